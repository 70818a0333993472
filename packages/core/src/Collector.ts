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

// An entry of the recency list: least recently active at the head, most recent at the tail.
// (A Map's insertion order would do the same, but finding its first live entry after many deletions
// scans the deleted slots, which made eviction the most expensive step under a flood.)
interface Entry {
  traceId: string;
  spans: SpanRecord[];
  prev: Entry | undefined;
  next: Entry | undefined;
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
  #traces = new Map<string, Entry>();
  #head: Entry | undefined;
  #tail: Entry | undefined;
  #spanCount = 0;
  #evicted = 0;
  #dropped = 0;
  #sampledOut = 0;
  #sampledOutIds = new Set<string>();
  // The same ids in arrival order, as a ring, so the oldest is forgotten in O(1) once the set is full.
  #sampledOutRing: string[] = [];
  #ringIndex = 0;
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
        if (this.#sampledOutRing.length < this.maxTraces) this.#sampledOutRing.push(traceId);
        else {
          this.#sampledOutIds.delete(this.#sampledOutRing[this.#ringIndex] as string);
          this.#sampledOutRing[this.#ringIndex] = traceId;
          this.#ringIndex = (this.#ringIndex + 1) % this.maxTraces;
        }
      }
      return;
    }
    // Spans of one trace tend to end together: the most recent trace needs no lookup.
    const tail = this.#tail;
    let entry = tail !== undefined && tail.traceId === traceId ? tail : this.#traces.get(traceId);
    if (entry === undefined) {
      // Most traces a process sees hold one or two spans: an array of one, not push's room for sixteen.
      entry = { traceId, spans: [span], prev: tail, next: undefined };
      this.#spanCount++;
      this.#append(entry);
      this.#traces.set(traceId, entry);
      if (this.#traces.size > this.maxTraces) {
        const oldest = this.#head as Entry;
        this.#unlink(oldest);
        this.#traces.delete(oldest.traceId);
        this.#spanCount -= oldest.spans.length;
        this.#evicted++;
      }
      return;
    } else if (entry !== this.#tail) {
      this.#unlink(entry);
      this.#append(entry);
    }
    const spans = entry.spans;
    if (spans.length >= this.maxSpansPerTrace) {
      this.#dropped++;
      return;
    }
    spans.push(span);
    this.#spanCount++;
  }

  #append(entry: Entry): void {
    entry.prev = this.#tail;
    entry.next = undefined;
    if (this.#tail) this.#tail.next = entry;
    else this.#head = entry;
    this.#tail = entry;
  }

  #unlink(entry: Entry): void {
    if (entry.prev) entry.prev.next = entry.next;
    else this.#head = entry.next;
    if (entry.next) entry.next.prev = entry.prev;
    else this.#tail = entry.prev;
    entry.prev = entry.next = undefined;
  }

  /** The traces held, least recently active first, each with its spans sorted by start time. */
  traces(): CollectedTrace[] {
    const out: CollectedTrace[] = [];
    for (let e = this.#head; e !== undefined; e = e.next) {
      out.push({ traceId: e.traceId, spans: [...e.spans].sort((a, b) => a.timestamp - b.timestamp) });
    }
    return out;
  }

  /** The spans of one trace, or undefined. */
  trace(traceId: string): SpanRecord[] | undefined {
    const entry = this.#traces.get(traceId);
    return entry && [...entry.spans].sort((a, b) => a.timestamp - b.timestamp);
  }

  /** Forgets all traces and resets the counters. */
  clear(): void {
    this.#traces.clear();
    this.#head = this.#tail = undefined;
    this.#sampledOutIds.clear();
    this.#sampledOutRing = [];
    this.#ringIndex = 0;
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
