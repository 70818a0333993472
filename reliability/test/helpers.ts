// What every fault test needs: names unique to this run, a ledger of span starts and ends, a watch on
// unhandled rejections, and a census of timers, handles and listeners taken before and after.
import assert from 'node:assert/strict';
import { createHook } from 'node:async_hooks';
import { randomBytes } from 'node:crypto';
import { onSpanEnd, onSpanStart, type SpanRecord } from '@cyb/core';

export const AMQP_URL = process.env.AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

/** `cyb-reliability-<what>-<random>`: never meets another package's or another run's names. */
export function uniqueName(what: string): string {
  return `cyb-reliability-${what}-${randomBytes(4).toString('hex')}`;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `predicate` every `everyMs` until it holds; rejects after `ms` with `what` in the message. */
export async function waitUntil(predicate: () => boolean, what: string, ms = 10_000, everyMs = 10): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/**
 * Every span started and ended in this process while open: a span counts as open from its start to its
 * end. `open()` after a fault says whether anything was left hanging.
 */
export class SpanLedger {
  readonly started = new Map<string, SpanRecord>();
  readonly ended = new Map<string, SpanRecord>();
  readonly #stops: (() => void)[];

  constructor() {
    this.#stops = [
      onSpanStart((s) => void this.started.set(s.spanId, s)),
      onSpanEnd((s) => void this.ended.set(s.spanId, s)),
    ];
  }

  /** Spans started and not ended. */
  open(filter: (s: SpanRecord) => boolean = () => true): SpanRecord[] {
    return [...this.started.values()].filter((s) => !this.ended.has(s.spanId) && filter(s));
  }

  endedWhere(filter: (s: SpanRecord) => boolean): SpanRecord[] {
    return [...this.ended.values()].filter(filter);
  }

  stop(): void {
    for (const stop of this.#stops) stop();
  }
}

/** Collects unhandled rejections and uncaught exceptions from now until `stop()`. */
export class FailureWatch {
  readonly rejections: unknown[] = [];
  readonly #onRejection = (reason: unknown): void => void this.rejections.push(reason);

  constructor() {
    process.on('unhandledRejection', this.#onRejection);
  }

  stop(): unknown[] {
    process.off('unhandledRejection', this.#onRejection);
    return this.rejections;
  }
}

/**
 * Timers created while it runs, referenced or not (an unref'd timer never keeps the process up, so
 * `getActiveResourcesInfo` does not list it, but a leaked one still holds its closure). A timer is
 * alive from its init to its destroy, which comes when it fires for the last time or is cleared.
 */
export class TimerWatch {
  readonly #alive = new Map<number, string>();
  readonly #hook;

  constructor() {
    this.#hook = createHook({
      init: (id, type) => {
        if (type === 'Timeout') this.#alive.set(id, new Error().stack ?? '');
      },
      destroy: (id) => void this.#alive.delete(id),
    }).enable();
  }

  /** Stacks of the timers still alive, once destroy hooks queued so far have run. */
  async alive(): Promise<string[]> {
    // Node batches destroy hooks; a few turns of the loop let the queued ones through.
    for (let i = 0; i < 3; i++) await new Promise((resolve) => setImmediate(resolve));
    return [...this.#alive.values()];
  }

  stop(): void {
    this.#hook.disable();
  }
}

/** The types of active resources (sockets, servers, timers, child processes), counted. */
export function resourceCensus(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const type of process.getActiveResourcesInfo()) counts[type] = (counts[type] ?? 0) + 1;
  return counts;
}

/** Listener counts on `process`, per event. */
export function processListeners(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const name of process.eventNames()) counts[String(name)] = process.listenerCount(name);
  return counts;
}

/** Types of which `after` holds more than `before`: what was left behind. */
function leftovers(before: Record<string, number>, after: Record<string, number>): Record<string, number> {
  const extra: Record<string, number> = {};
  for (const [type, n] of Object.entries(after)) if (n > (before[type] ?? 0)) extra[type] = n - (before[type] ?? 0);
  return extra;
}

/**
 * Waits (briefly) until no more resources of any type are active than in `before`: sockets close a
 * tick or two after the close event the application saw, and what an earlier test left winding down
 * may end meanwhile. Fails with both censuses when something stays.
 */
export async function assertCensusBack(before: Record<string, number>, what: string, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  let now = resourceCensus();
  while (Object.keys(leftovers(before, now)).length > 0 && Date.now() < deadline) {
    await sleep(20);
    now = resourceCensus();
  }
  assert.deepEqual(leftovers(before, now), {}, `${what}: active resources before ${JSON.stringify(before)}, after ${JSON.stringify(now)}`);
}

/** The description of an error an application would log: constructor name, message and code. */
export function describeError(error: unknown): string {
  if (!(error instanceof Error)) return `non-error ${JSON.stringify(error)}`;
  const code = (error as { code?: unknown }).code;
  return `${error.constructor.name}: ${error.message}${code === undefined ? '' : ` [${String(code)}]`}`;
}

/** True when nothing reached Object.prototype (prototype pollution). */
export function assertPrototypeClean(snapshot: readonly string[]): void {
  assert.equal(({} as Record<string, unknown>).polluted, undefined, 'Object.prototype.polluted');
  assert.deepEqual(Object.getOwnPropertyNames(Object.prototype).sort(), [...snapshot], 'Object.prototype own properties');
  assert.equal(Object.getPrototypeOf({}), Object.prototype);
}

/** Object.prototype's own property names now, for `assertPrototypeClean`. */
export function prototypeSnapshot(): string[] {
  return Object.getOwnPropertyNames(Object.prototype).sort();
}

/**
 * A value as plain data: own enumerable keys, plus the prototype when it is not Object.prototype.
 * Decoders that assign keys one by one (amqplib's) turn a `__proto__` header into the decoded
 * object's prototype; two decodings of one message are equal by this though their prototypes are
 * distinct objects.
 */
export function plainData(value: unknown, depth = 0): unknown {
  if (value === null || typeof value !== 'object' || depth > 6) return value;
  if (value instanceof Uint8Array) {
    // A table whose prototype became a Buffer passes instanceof but is no byte array.
    try {
      return `bytes:${Buffer.from(value).toString('hex')}`;
    } catch {
      // An object after all: described below.
    }
  }
  if (Array.isArray(value)) return value.map((v) => plainData(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(value)) Object.defineProperty(out, key, { value: plainData((value as Record<string, unknown>)[key], depth + 1), enumerable: true });
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto !== Object.prototype) Object.defineProperty(out, '[[Prototype]]', { value: proto === null ? null : plainData(proto, depth + 1), enumerable: true });
  return out;
}

