// Shared set-up for the tests: the broker address, unique names, and waiting for spans.
import { randomBytes } from 'node:crypto';
import type { Collector, SpanRecord } from '@cyb/core';
import { Kafka, logLevel, type ConsumerConfig, type LogEntry } from 'kafkajs';

/**
 * The Kafka bootstrap servers. The tests need a broker: `npm test` at the repository root starts the
 * librdkafka mock (tools/services.sh) and sets KAFKA_BROKERS; any real Kafka works too. Without one the
 * tests fail, in CI or not: they never pass by skipping.
 */
export function brokers(): string[] {
  const value = process.env.KAFKA_BROKERS;
  if (value === undefined || value.trim() === '') {
    throw new Error(
      'KAFKA_BROKERS is not set. Run the tests through `npm test` at the repository root, or start a broker ' +
        '(tools/services.sh, or tools/kafka-mock/build/broker) and export KAFKA_BROKERS=<host:port>.',
    );
  }
  return value.split(',').map((s) => s.trim());
}

/** A name no other test run uses: topics and groups of concurrent runs must not meet. */
export function uniqueName(label: string): string {
  return `cyb-kafka-${label}-${randomBytes(5).toString('hex')}`;
}

/** A kafkajs client that stays quiet unless `logs` is given to receive its entries. */
export function kafkaClient(clientId: string, logs?: LogEntry[]): Kafka {
  return new Kafka({
    clientId,
    brokers: brokers(),
    logLevel: logs ? logLevel.ERROR : logLevel.NOTHING,
    logCreator: () => (entry) => {
      logs?.push(entry);
    },
    retry: { initialRetryTime: 100, retries: 5 },
  });
}

/** Consumer timings the test broker needs (see DESIGN.md): quick heartbeats, short fetch waits. */
export function consumerConfig(groupId: string): ConsumerConfig {
  return { groupId, sessionTimeout: 6000, heartbeatInterval: 500, maxWaitTimeInMs: 100 };
}

/** Resolves once `check` returns a value other than undefined; fails after `timeoutMs` naming `what`. */
export async function waitFor<T>(what: string, check: () => T | undefined, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20).unref());
  }
}

/** Every finished span the collector holds, in one list. */
export function allSpans(collector: Collector): SpanRecord[] {
  return collector.traces().flatMap((t) => t.spans);
}

/** Header value as text, whether kafkajs gave a Buffer, a string or an array of them. */
export function headerText(value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (Array.isArray(value)) return value.map((v) => headerText(v)).join(',');
  return Buffer.isBuffer(value) ? value.toString('utf8') : String(value);
}

/** The trace and span id a `traceparent` value names. */
export function parseTraceparent(value: string | undefined): { traceId: string; spanId: string } | undefined {
  const match = /^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$/.exec(value ?? '');
  return match ? { traceId: match[1]!, spanId: match[2]! } : undefined;
}
