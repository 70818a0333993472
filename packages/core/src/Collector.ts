import { CybSpan, traceHashOf, type SpanRecord } from './CybSpan.js';
import { onSpanEnd } from './internal/channel.js';
import { sampledByRatio } from './internal/ids.js';
import { hashTraceId } from './internal/trace-hash.js';

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

// The traces live in slots of parallel arrays, not in an object per trace. Each insert into a full
// collector evicts the least recently active trace, and inside a busy process that trace's memory is
// long out of the CPU cache. With a Map and an entry object per trace, an eviction touched five or six
// scattered objects (about 2 µs per insert in a CPU profile of a traced HTTP server); here it reads
// a few small typed arrays (recency links, hashes, the hash table) and never the evicted id or spans.
// A slot holds the span itself while its trace has one, and an array from the second span on.
// The spans themselves stay objects. Records of bytes in one buffer outside the heap took the copying
// out of scavenges but cost as much to write as the copying had (see bench/README.md).
const NONE = -1;
const FIRST_CAPACITY = 64;

/** `to` holding `from`'s values at its start. */
function widened<T extends Int32Array | Uint32Array>(from: T, to: T): T {
  to.set(from);
  return to;
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
  // Per slot: trace id, spans, span count, hash, recency links (least recent at the head). Slots
  // are added as traces arrive, doubling up to maxTraces; once full, the evicted slot is reused.
  #ids: (string | undefined)[] = [];
  #spans: (SpanRecord | SpanRecord[] | undefined)[] = [];
  #counts = new Int32Array(0);
  #hashes = new Uint32Array(0);
  #prev = new Int32Array(0);
  #next = new Int32Array(0);
  // Open addressing with linear probing: slot + 1 at each place, 0 when empty; never over half full.
  #table = new Int32Array(0);
  #mask = 0;
  #head = NONE;
  #tail = NONE;
  #traceCount = 0;
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
    if (typeof traceId !== 'string') throw new TypeError(`span.traceId must be a string, got ${typeof traceId}`);
    if (this.sampleRate < 1 && !sampledByRatio(traceId, this.sampleRate)) {
      this.#sampleOut(traceId);
      return;
    }
    // Spans of one trace tend to end together: the most recent trace needs no lookup.
    let slot = this.#tail;
    if (slot === NONE || this.#ids[slot] !== traceId) {
      // Spans made here carry the hash of their trace id, taken from its bytes when the id was made
      // (internal/trace-hash.ts): a 32-character loop fewer per trace.
      const hash = span instanceof CybSpan ? traceHashOf(span) : hashTraceId(traceId);
      slot = this.#find(traceId, hash);
      if (slot === NONE) {
        this.#insert(traceId, hash, span);
        return;
      }
      this.#unlink(slot);
      this.#append(slot);
    }
    const count = this.#counts[slot] as number;
    if (count >= this.maxSpansPerTrace) {
      this.#dropped++;
      return;
    }
    const held = this.#spans[slot] as SpanRecord | SpanRecord[];
    if (count === 1) this.#spans[slot] = [held as SpanRecord, span];
    else (held as SpanRecord[]).push(span);
    this.#counts[slot] = count + 1;
    this.#spanCount++;
  }

  #sampleOut(traceId: string): void {
    if (this.#sampledOutIds.has(traceId)) return;
    this.#sampledOut++;
    this.#sampledOutIds.add(traceId);
    if (this.#sampledOutRing.length < this.maxTraces) this.#sampledOutRing.push(traceId);
    else {
      this.#sampledOutIds.delete(this.#sampledOutRing[this.#ringIndex] as string);
      this.#sampledOutRing[this.#ringIndex] = traceId;
      this.#ringIndex = (this.#ringIndex + 1) % this.maxTraces;
    }
  }

  /** The slot holding `traceId`, or NONE. */
  #find(traceId: string, hash: number): number {
    const table = this.#table;
    const mask = this.#mask;
    if (mask === 0) return NONE;
    for (let place = hash & mask; ; place = (place + 1) & mask) {
      const held = table[place] as number;
      if (held === 0) return NONE;
      const slot = held - 1;
      if (this.#hashes[slot] === hash && this.#ids[slot] === traceId) return slot;
    }
  }

  /** Starts a trace with its first span, evicting the least recently active one when full. */
  #insert(traceId: string, hash: number, span: SpanRecord): void {
    let slot: number;
    const capacity = this.#counts.length;
    if (this.#traceCount < capacity) {
      slot = this.#traceCount;
    } else if (capacity < this.maxTraces) {
      this.#grow();
      slot = this.#traceCount;
    } else {
      slot = this.#head;
      this.#unlink(slot);
      this.#removeFromTable(slot);
      this.#spanCount -= this.#counts[slot] as number;
      this.#traceCount--;
      this.#evicted++;
    }
    this.#ids[slot] = traceId;
    this.#spans[slot] = span;
    this.#counts[slot] = 1;
    this.#hashes[slot] = hash;
    this.#append(slot);
    this.#placeInTable(slot, hash);
    this.#traceCount++;
    this.#spanCount++;
  }

  #placeInTable(slot: number, hash: number): void {
    const table = this.#table;
    const mask = this.#mask;
    let place = hash & mask;
    while (table[place] !== 0) place = (place + 1) & mask;
    table[place] = slot + 1;
  }

  /** Takes a slot out of the table, moving later entries of its probe run back (no tombstones). */
  #removeFromTable(slot: number): void {
    const table = this.#table;
    const mask = this.#mask;
    let place = (this.#hashes[slot] as number) & mask;
    while (table[place] !== slot + 1) place = (place + 1) & mask;
    let gap = place;
    for (let next = (gap + 1) & mask; table[next] !== 0; next = (next + 1) & mask) {
      const held = table[next] as number;
      const home = (this.#hashes[held - 1] as number) & mask;
      // The entry at `next` may fill the gap unless its home lies cyclically in (gap, next].
      if (next > gap ? home <= gap || home > next : home <= gap && home > next) {
        table[gap] = held;
        gap = next;
      }
    }
    table[gap] = 0;
  }

  #grow(): void {
    const capacity = Math.min(this.maxTraces, Math.max(FIRST_CAPACITY, this.#counts.length * 2));
    // A slot's links are written by #append before anything reads them: no fill needed.
    this.#counts = widened(this.#counts, new Int32Array(capacity));
    this.#hashes = widened(this.#hashes, new Uint32Array(capacity));
    this.#prev = widened(this.#prev, new Int32Array(capacity));
    this.#next = widened(this.#next, new Int32Array(capacity));
    let size = 16;
    while (size < capacity * 2) size *= 2;
    if (size !== this.#table.length) {
      this.#table = new Int32Array(size);
      this.#mask = size - 1;
      for (let slot = 0; slot < this.#traceCount; slot++) this.#placeInTable(slot, this.#hashes[slot] as number);
    }
  }

  #append(slot: number): void {
    const tail = this.#tail;
    this.#prev[slot] = tail;
    this.#next[slot] = NONE;
    if (tail === NONE) this.#head = slot;
    else this.#next[tail] = slot;
    this.#tail = slot;
  }

  #unlink(slot: number): void {
    const prev = this.#prev[slot] as number;
    const next = this.#next[slot] as number;
    if (prev === NONE) this.#head = next;
    else this.#next[prev] = next;
    if (next === NONE) this.#tail = prev;
    else this.#prev[next] = prev;
  }

  #sortedSpans(slot: number): SpanRecord[] {
    const held = this.#spans[slot] as SpanRecord | SpanRecord[];
    const spans = Array.isArray(held) ? [...held] : [held];
    return spans.sort((a, b) => a.timestamp - b.timestamp);
  }

  /** The traces held, least recently active first, each with its spans sorted by start time. */
  traces(): CollectedTrace[] {
    const out: CollectedTrace[] = [];
    for (let slot = this.#head; slot !== NONE; slot = this.#next[slot] as number) {
      out.push({ traceId: this.#ids[slot] as string, spans: this.#sortedSpans(slot) });
    }
    return out;
  }

  /** The spans of one trace, or undefined. */
  trace(traceId: string): SpanRecord[] | undefined {
    if (typeof traceId !== 'string') return undefined;
    const slot = this.#find(traceId, hashTraceId(traceId));
    return slot === NONE ? undefined : this.#sortedSpans(slot);
  }

  /** Forgets all traces and resets the counters. */
  clear(): void {
    this.#ids = [];
    this.#spans = [];
    this.#counts = new Int32Array(0);
    this.#hashes = new Uint32Array(0);
    this.#prev = new Int32Array(0);
    this.#next = new Int32Array(0);
    this.#table = new Int32Array(0);
    this.#mask = 0;
    this.#head = this.#tail = NONE;
    this.#traceCount = 0;
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
      traces: this.#traceCount,
      spans: this.#spanCount,
      evictedTraces: this.#evicted,
      droppedSpans: this.#dropped,
      sampledOut: this.#sampledOut,
    };
  }
}
