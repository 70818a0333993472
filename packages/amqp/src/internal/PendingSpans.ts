import { performance } from 'node:perf_hooks';
import type { CybSpan } from '@cyb/core';

/** Why a waiting span was ended by the table rather than by a settle or confirm. */
export type ForcedEnd = 'timeout' | 'dropped';

/**
 * Spans waiting for something the broker or the application does later (a settle, a confirm), keyed
 * by a number that only grows on one channel (the delivery tag, a publish sequence).
 *
 * Bounded twice so an application that never acks leaks nothing: a span older than `timeoutMs` is
 * ended by one unref'd timer, and past `max` entries the oldest is ended to make room. Keys arrive in
 * increasing order and each span is added as it starts, so the Map's insertion order is key order and
 * start order: `takeUpTo` and the sweep only look at the head, and the span's own start time is its
 * deadline's base (no entry object per message).
 */
export class PendingSpans {
  readonly #spans = new Map<number, CybSpan>();
  readonly #timeoutMs: number;
  readonly #max: number;
  readonly #onForcedEnd: (span: CybSpan, reason: ForcedEnd) => void;
  #timer: NodeJS.Timeout | undefined;

  constructor(timeoutMs: number, max: number, onForcedEnd: (span: CybSpan, reason: ForcedEnd) => void) {
    this.#timeoutMs = timeoutMs;
    this.#max = max;
    this.#onForcedEnd = onForcedEnd;
  }

  get size(): number {
    return this.#spans.size;
  }

  add(key: number, span: CybSpan): void {
    const spans = this.#spans;
    const previous = spans.get(key);
    if (previous !== undefined) {
      // A reused key means we missed the end of the earlier one; re-inserting keeps the order invariant.
      spans.delete(key);
      this.#onForcedEnd(previous, 'dropped');
    }
    while (spans.size >= this.#max) {
      const [oldestKey, oldest] = spans.entries().next().value as [number, CybSpan];
      spans.delete(oldestKey);
      this.#onForcedEnd(oldest, 'dropped');
    }
    spans.set(key, span);
    if (this.#timer === undefined) this.#arm(this.#timeoutMs);
  }

  /** Removes and returns the span under `key`. */
  take(key: number): CybSpan | undefined {
    const span = this.#spans.get(key);
    if (span !== undefined) {
      this.#spans.delete(key);
      this.#disarmIfEmpty();
    }
    return span;
  }

  /** Removes every span with a key up to and including `key`, oldest first, handing each to `fn`. */
  takeUpTo(key: number, fn: (span: CybSpan) => void): void {
    for (const [k, span] of this.#spans) {
      if (k > key) break;
      this.#spans.delete(k);
      fn(span);
    }
    this.#disarmIfEmpty();
  }

  /** Removes every span, oldest first, handing each to `fn`. */
  takeAll(fn: (span: CybSpan) => void): void {
    if (this.#spans.size === 0) return;
    const all = [...this.#spans.values()];
    this.#spans.clear();
    this.stop();
    for (const span of all) fn(span);
  }

  /** Stops the timer; what is left stays for `takeAll`. */
  stop(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  // An empty table needs no sweep: a timer left armed would outlive the channel by up to `timeoutMs`
  // (a refused publish adds and takes its span at once), and `add` re-arms on the next entry.
  #disarmIfEmpty(): void {
    if (this.#spans.size === 0) this.stop();
  }

  #arm(delayMs: number): void {
    this.#timer = setTimeout(this.#sweep, Math.max(1, Math.ceil(delayMs)));
    this.#timer.unref();
  }

  readonly #sweep = (): void => {
    this.#timer = undefined;
    // Span timestamps are microseconds since the epoch, from the monotonic clock anchored at start.
    const nowMs = performance.timeOrigin + performance.now();
    for (const [k, span] of this.#spans) {
      const deadline = span.timestamp / 1000 + this.#timeoutMs;
      if (deadline > nowMs) {
        this.#arm(deadline - nowMs);
        return;
      }
      this.#spans.delete(k);
      this.#onForcedEnd(span, 'timeout');
    }
  };
}
