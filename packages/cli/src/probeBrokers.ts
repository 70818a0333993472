import { randomBytes } from 'node:crypto';
import { debuglog } from 'node:util';
import { contextWithSpan, extract, inject, startSpan } from '@cyb/core';

const debug = debuglog('cyb:cli');

/** One transport to check. */
export interface ProbeTarget {
  transport: 'amqp' | 'kafka' | 'redis';
  /** AMQP or Redis URL, or Kafka brokers as `host:port[,host:port]`. */
  target: string;
}

/** What the round trip through one broker showed. */
export interface ProbeResult {
  transport: ProbeTarget['transport'];
  /** The target with any password masked. */
  target: string;
  reachable: boolean;
  sent: boolean;
  received: boolean;
  /** The receiving side continued the sender's trace: same trace id, the sending span as parent. */
  context_survived: boolean;
  trace_id: string | null;
  /** Headers as they arrived, the propagation ones only. */
  headers: Record<string, string>;
  round_trip_ms: number | null;
  error: string | null;
}

/** Options of {@link probeBrokers}. */
export interface ProbeOptions {
  /** Time allowed per transport (Kafka's first consumer-group join alone takes about 3 s). Default 20 s. */
  timeoutMs?: number;
}

const PROPAGATION_HEADERS = ['traceparent', 'tracestate', 'b3', 'baggage'];

/**
 * Checks each broker and sends one traced message through it and back: a producer span's context is
 * injected into the message headers (a stream entry's fields for Redis), the message is consumed, the
 * context extracted and a consumer span started from it. The context survived when that span has the
 * producer's trace id and the producer span as its parent. Each probe uses names of its own and
 * removes what it created, except Kafka topics (deleting topics needs admin rights).
 *
 * @example
 * ```ts
 * const results = await probeBrokers([{ transport: 'amqp', target: 'amqp://guest:guest@127.0.0.1:5672' }]);
 * console.log(results[0].context_survived);
 * ```
 */
export async function probeBrokers(targets: readonly ProbeTarget[], options: ProbeOptions = {}): Promise<ProbeResult[]> {
  const timeoutMs = options.timeoutMs ?? 20_000;
  const results: ProbeResult[] = [];
  for (const t of targets) {
    const result: ProbeResult = {
      transport: t.transport, target: maskSecret(t.target), reachable: false, sent: false, received: false,
      context_survived: false, trace_id: null, headers: {}, round_trip_ms: null, error: null,
    };
    const cleanups: (() => Promise<unknown>)[] = [];
    try {
      const run = t.transport === 'amqp' ? probeAmqp : t.transport === 'kafka' ? probeKafka : probeRedis;
      await withTimeout(run(t.target, result, cleanups), timeoutMs, `no answer within ${timeoutMs} ms`);
    } catch (error) {
      result.error = error instanceof Error ? error.message : String(error);
      debug('probe %s failed: %o', t.transport, error);
    } finally {
      for (const cleanup of cleanups.reverse()) {
        await withTimeout(cleanup(), 5000, 'cleanup timed out').catch((error: unknown) => debug('probe cleanup: %o', error));
      }
    }
    results.push(result);
  }
  return results;
}

/** The producer side: a span, its context in a fresh carrier. */
function sendSide(transport: string): { headers: Record<string, string>; finish: () => void; traceId: string; spanId: string; started: number } {
  const producer = startSpan(`cyb probe ${transport}`, { kind: 'producer', parent: null, attributes: { 'messaging.system': transport } });
  const headers: Record<string, string> = { 'x-cyb-probe': randomBytes(8).toString('hex') };
  inject(headers, { context: contextWithSpan(producer) });
  return { headers, finish: () => producer.end(), traceId: producer.traceId, spanId: producer.spanId, started: performance.now() };
}

/** The consumer side: continue whatever context arrived and compare it with what was sent. */
function receiveSide(carrier: Record<string, unknown>, sent: ReturnType<typeof sendSide>, result: ProbeResult): void {
  result.received = true;
  result.round_trip_ms = Math.round((performance.now() - sent.started) * 10) / 10;
  for (const key of PROPAGATION_HEADERS) {
    const value = carrier[key];
    if (value !== undefined) result.headers[key] = Buffer.isBuffer(value) ? value.toString('utf8') : String(value);
  }
  const remote = extract(carrier);
  const consumer = startSpan(`cyb probe ${result.transport} receive`, remote ? { kind: 'consumer', parent: remote } : { kind: 'consumer', parent: null });
  consumer.end();
  result.trace_id = consumer.traceId;
  result.context_survived = consumer.traceId === sent.traceId && consumer.parentSpanId === sent.spanId;
}

async function probeAmqp(url: string, result: ProbeResult, cleanups: (() => Promise<unknown>)[]): Promise<void> {
  const amqp = await optionalImport<typeof import('amqplib')>('amqplib');
  const connection = await amqp.connect(url);
  cleanups.push(() => connection.close());
  result.reachable = true;
  const channel = await connection.createChannel();
  // Exclusive and auto-deleted: the queue goes with the connection whatever happens.
  const { queue } = await channel.assertQueue(`cyb-probe-${randomBytes(4).toString('hex')}`, { exclusive: true, autoDelete: true, durable: false });
  const arrived = new Promise<Record<string, unknown>>((resolve) => {
    void channel.consume(queue, (msg) => {
      if (!msg) return;
      channel.ack(msg);
      resolve((msg.properties.headers ?? {}) as Record<string, unknown>);
    });
  });
  const sent = sendSide('rabbitmq');
  channel.sendToQueue(queue, Buffer.from('cyb probe'), { headers: sent.headers });
  sent.finish();
  result.sent = true;
  receiveSide(await arrived, sent, result);
  await channel.deleteQueue(queue);
}

async function probeKafka(brokers: string, result: ProbeResult, cleanups: (() => Promise<unknown>)[]): Promise<void> {
  const { Kafka, logLevel } = await optionalImport<typeof import('kafkajs')>('kafkajs');
  const suffix = randomBytes(4).toString('hex');
  const topic = `cyb-probe-${suffix}`;
  const kafka = new Kafka({ clientId: 'cyb-probe', brokers: brokers.split(',').map((b) => b.trim()), logLevel: logLevel.NOTHING, retry: { retries: 3 } });
  const producer = kafka.producer({ allowAutoTopicCreation: true });
  await producer.connect();
  cleanups.push(() => producer.disconnect());
  result.reachable = true;
  const sent = sendSide('kafka');
  // Producing first creates the topic on brokers that allow it; the consumer then reads from the start.
  await producer.send({ topic, messages: [{ key: 'cyb-probe', value: 'cyb probe', headers: sent.headers }] });
  sent.finish();
  result.sent = true;
  const consumer = kafka.consumer({ groupId: `cyb-probe-${suffix}`, sessionTimeout: 6000, heartbeatInterval: 500, maxWaitTimeInMs: 100 });
  await consumer.connect();
  cleanups.push(() => consumer.disconnect());
  await consumer.subscribe({ topic, fromBeginning: true });
  const arrived = new Promise<Record<string, unknown>>((resolve) => {
    void consumer.run({
      eachMessage: async ({ message }) => {
        resolve((message.headers ?? {}) as Record<string, unknown>);
      },
    });
  });
  receiveSide(await arrived, sent, result);
}

async function probeRedis(url: string, result: ProbeResult, cleanups: (() => Promise<unknown>)[]): Promise<void> {
  const { Redis } = await optionalImport<typeof import('ioredis')>('ioredis');
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null });
  let lastError: Error | undefined;
  client.on('error', (error: Error) => {
    lastError = error;
    debug('probe redis: %s', error.message);
  });
  cleanups.push(() => client.quit().catch(() => client.disconnect()));
  try {
    await client.connect();
  } catch (error) {
    // ioredis rejects with "Connection is closed"; the socket's own error says why.
    if (lastError) throw new Error(lastError.message, { cause: error });
    throw error;
  }
  await client.ping();
  result.reachable = true;
  // A stream entry's fields carry the headers, as message properties do on the other brokers.
  const key = `cyb-probe-${randomBytes(4).toString('hex')}`;
  cleanups.push(() => client.del(key));
  const sent = sendSide('redis');
  const fields = Object.entries(sent.headers).flat();
  await client.xadd(key, '*', ...fields, 'payload', 'cyb probe');
  sent.finish();
  result.sent = true;
  const entries = await client.xread('COUNT', 1, 'STREAMS', key, '0');
  const first = entries?.[0]?.[1]?.[0];
  if (!first) throw new Error('the stream entry did not come back');
  const carrier: Record<string, unknown> = {};
  const flat = first[1];
  for (let i = 0; i + 1 < flat.length; i += 2) carrier[flat[i]!] = flat[i + 1];
  receiveSide(carrier, sent, result);
}

async function optionalImport<T>(name: string): Promise<T> {
  try {
    const mod = (await import(name)) as T & { default?: T };
    // CommonJS packages come back with their exports on `default` as well.
    return (mod.default && typeof mod.default === 'object' ? { ...mod.default, ...mod } : mod) as T;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND') throw new Error(`${name} is not installed (npm install ${name})`, { cause: error });
    throw error;
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** `amqp://guest:***@host`: what is shown names the broker without its password. */
export function maskSecret(target: string): string {
  try {
    const url = new URL(target);
    if (url.password) url.password = '***';
    return url.toString().replace(/\/$/, '');
  } catch {
    return target;
  }
}
