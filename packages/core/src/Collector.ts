import type { SpanRecord } from './CybSpan.js';
import { onSpanEnd } from './internal/channel.js';
import { sampledByRatio } from './internal/ids.js';

export interface CollectorOptions {
  /** Traces kept at most; the least recently active is evicted first. Default 1000. */
  maxTraces?: number;
  /** Spans kept per trace; later ones are dropped and counted. Default 50. */
  maxSpansPerTrace?: number;
  /** Fraction of traces kept, decided by trace id so every process agrees. Default 1. */
  sampleRate?: number;
}

export interface CollectorStats {
  traces: number;
  spans: number;
  /** Traces pushed out by newer ones. */
  evictedTraces: number;
  /** Spans beyond `maxSpansPerTrace`. */
  droppedSpans: number;
  /** Distinct traces not kept because of `sampleRate`. */
  sampledOut: number;
}

/** One trace: its id and spans in start order. */
export interface CollectedTrace {
  traceId: string;
  spans: SpanRecord[];
}

function positiveInteger(value: number, name: string): number {
  if (!Number.isInteger(value) || value < 1) throw new RangeError(`${name} must be a positive integer, got ${String(value)}`);
  return value;
}

/**
 * An ephemeral, bounded, in-memory store of finished spans grouped by trace id.
 *
 * @example
 * const collector = new Collector({ maxTraces: 100 }).start();
 * await handleRequest();
 * const [first] = collector.traces();
 */
export class Collector {
  readonly maxTraces: number;
  readonly maxSpansPerTrace: number;
  readonly sampleRate: number;
  // Map iteration order is insertion order: re-inserting on activity makes the first key the LRU one.
  #traces = new Map<string, SpanRecord[]>();
  #spanCount = 0;
  #evicted = 0;
  #dropped = 0;
  #sampledOut = 0;
  #sampledOutIds = new Set<string>();
  #unsubscribe: (() => void) | undefined;

  constructor({ maxTraces = 1000, maxSpansPerTrace = 50, sampleRate = 1 }: CollectorOptions = {}) {
    this.maxTraces = positiveInteger(maxTraces, 'maxTraces');
    this.maxSpansPerTrace = positiveInteger(maxSpansPerTrace, 'maxSpansPerTrace');
    if (typeof sampleRate !== 'number' || !(sampleRate >= 0 && sampleRate <= 1)) {
      throw new RangeError(`sampleRate must be between 0 and 1, got ${String(sampleRate)}`);
    }
    this.sampleRate = sampleRate;
  }

  /** Starts receiving finished spans of this process. Idempotent. */
  start(): this {
    this.#unsubscribe ??= onSpanEnd((span) => this.add(span));
    return this;
  }

  /** Stops receiving spans; what was collected stays. */
  stop(): this {
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
    return this;
  }

  /** Adds one finished span, from this process or decoded from another (OTLP). */
  add(span: SpanRecord): void {
    const traceId = span.traceId;
    if (this.sampleRate < 1 && !sampledByRatio(traceId, this.sampleRate)) {
      if (!this.#sampledOutIds.has(traceId)) {
        this.#sampledOut++;
        this.#sampledOutIds.add(traceId);
        if (this.#sampledOutIds.size > this.maxTraces) {
          const oldest = this.#sampledOutIds.values().next().value as string;
          this.#sampledOutIds.delete(oldest);
        }
      }
      return;
    }
    let spans = this.#traces.get(traceId);
    if (spans === undefined) {
      spans = [];
      this.#traces.set(traceId, spans);
      if (this.#traces.size > this.maxTraces) {
        const [oldestId, oldestSpans] = this.#traces.entries().next().value as [string, SpanRecord[]];
        this.#traces.delete(oldestId);
        this.#spanCount -= oldestSpans.length;
        this.#evicted++;
      }
    } else {
      this.#traces.delete(traceId);
      this.#traces.set(traceId, spans);
    }
    if (spans.length >= this.maxSpansPerTrace) {
      this.#dropped++;
      return;
    }
    spans.push(span);
    this.#spanCount++;
  }

  /** The traces held, least recently active first, each with its spans sorted by start time. */
  traces(): CollectedTrace[] {
    const out: CollectedTrace[] = [];
    for (const [traceId, spans] of this.#traces) {
      out.push({ traceId, spans: [...spans].sort((a, b) => a.timestamp - b.timestamp) });
    }
    return out;
  }

  /** The spans of one trace, or undefined. */
  trace(traceId: string): SpanRecord[] | undefined {
    const spans = this.#traces.get(traceId);
    return spans && [...spans].sort((a, b) => a.timestamp - b.timestamp);
  }

  /** Forgets all traces and resets the counters. */
  clear(): void {
    this.#traces.clear();
    this.#sampledOutIds.clear();
    this.#spanCount = 0;
    this.#evicted = 0;
    this.#dropped = 0;
    this.#sampledOut = 0;
  }

  stats(): CollectorStats {
    return {
      traces: this.#traces.size,
      spans: this.#spanCount,
      evictedTraces: this.#evicted,
      droppedSpans: this.#dropped,
      sampledOut: this.#sampledOut,
    };
  }
}
