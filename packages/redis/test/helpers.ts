// Shared by the test files: connections, unique key prefixes, waiting for spans. No side effects on import.
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { Collector, type SpanRecord } from '@cyb/core';

export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

/** A key / channel prefix unique to this package and test run; every key a test makes starts with it. */
export function uniquePrefix(): string {
  return `cyb-redis-test:${randomBytes(6).toString('hex')}`;
}

/**
 * A connected client. An unreachable Redis fails the test (no retries, no offline queue), it never
 * makes it pass by skipping.
 */
export async function connect(): Promise<Redis> {
  const client = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  await client.connect();
  return client;
}

/** Deletes every key under `prefix`. */
export async function cleanup(client: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
    if (keys.length > 0) await client.del(...keys);
    cursor = next;
  } while (cursor !== '0');
}

/** Every span a collector holds, across traces. */
export function allSpans(collector: Collector): SpanRecord[] {
  return collector.traces().flatMap((t) => t.spans);
}

/** Polls until `check` returns something truthy, or fails after `timeoutMs`. */
export async function waitFor<T>(what: string, check: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Spans named `name`, waiting until there are at least `count`. */
export async function spansNamed(collector: Collector, name: string, count = 1, timeoutMs = 5000): Promise<SpanRecord[]> {
  return waitFor(`${count} span(s) named ${name}`, () => {
    const found = allSpans(collector).filter((s) => s.name === name);
    return found.length >= count ? found : undefined;
  }, timeoutMs);
}

/** The one span named `name` (waits for it; fails when there are several). */
export async function spanNamed(collector: Collector, name: string): Promise<SpanRecord> {
  const found = await spansNamed(collector, name, 1);
  if (found.length !== 1) throw new Error(`expected one span named ${name}, found ${found.length}`);
  return found[0]!;
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
