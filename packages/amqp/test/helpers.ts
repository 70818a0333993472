// Shared by the test files: connections, unique names, waiting for spans. No side effects on import.
import { randomBytes } from 'node:crypto';
import * as amqplib from 'amqplib';
import type { Channel, ChannelModel } from 'amqplib';
import { Collector, type SpanRecord } from '@cyb/core';

export const AMQP_URL = process.env.AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';

/** A name unique to this package and this test run. */
export function unique(what: string): string {
  return `cyb-amqp-${what}-${randomBytes(4).toString('hex')}`;
}

export async function connect(): Promise<ChannelModel> {
  return amqplib.connect(AMQP_URL);
}

/** Every span a collector holds, across traces. */
export function allSpans(collector: Collector): SpanRecord[] {
  return collector.traces().flatMap((t) => t.spans);
}

/** Polls until `check` returns something truthy, or fails after `timeoutMs`. */
export async function waitFor<T>(what: string, check: () => T | undefined | false, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Spans named `name`, waiting until there are at least `count`. */
export async function spansNamed(collector: Collector, name: string, count: number, timeoutMs = 5000): Promise<SpanRecord[]> {
  return waitFor(`${count} span(s) named ${name}`, () => {
    const found = allSpans(collector).filter((s) => s.name === name);
    return found.length >= count ? found : undefined;
  }, timeoutMs);
}

/** Deletes queues and exchanges on a fresh channel, ignoring ones already gone. */
export async function cleanup(connection: ChannelModel, queues: string[], exchanges: string[] = []): Promise<void> {
  for (const q of queues) {
    const ch: Channel = await connection.createChannel();
    await ch.deleteQueue(q).catch(() => undefined);
    await ch.close().catch(() => undefined);
  }
  for (const x of exchanges) {
    const ch: Channel = await connection.createChannel();
    await ch.deleteExchange(x).catch(() => undefined);
    await ch.close().catch(() => undefined);
  }
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
