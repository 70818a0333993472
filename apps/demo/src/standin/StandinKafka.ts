import { EventEmitter } from 'node:events';
import { debuglog } from 'node:util';
import { BusConnection } from './BusConnection.js';
import { decodeBytes, encodeBytes, type WireMessage } from './wire.js';

const debug = debuglog('cyb:demo');

type Bytes = Buffer | string | null | undefined;
type HeaderValue = Bytes | (Buffer | string)[];

/** A message as kafkajs `send` takes it. */
export interface StandinProducerMessage {
  key?: Bytes;
  value: Bytes;
  headers?: Record<string, HeaderValue>;
  partition?: number;
  timestamp?: string;
}

/** A message as kafkajs `eachMessage` hands it over. */
export interface StandinKafkaMessage {
  key: Buffer | null;
  value: Buffer | null;
  headers: Record<string, Buffer | Buffer[] | undefined>;
  offset: string;
  timestamp: string;
  attributes: number;
  size: number;
}

export interface StandinEachMessagePayload {
  topic: string;
  partition: number;
  message: StandinKafkaMessage;
  heartbeat(): Promise<void>;
  pause(): () => void;
}

function encodeHeaders(headers: Record<string, HeaderValue> | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(headers ?? {})) {
    if (value === undefined || value === null) continue;
    out[key] = Array.isArray(value) ? value.map((v) => encodeBytes(v)) : encodeBytes(value);
  }
  return out;
}

function decodeHeaders(headers: unknown): Record<string, Buffer | Buffer[] | undefined> {
  const out: Record<string, Buffer | Buffer[] | undefined> = {};
  for (const [key, value] of Object.entries((headers as Record<string, unknown>) ?? {})) {
    out[key] = Array.isArray(value) ? value.map((v) => decodeBytes(v) ?? Buffer.alloc(0)) : (decodeBytes(value) ?? undefined);
  }
  return out;
}

/** kafkajs event names the demo listens to. */
const EVENTS = { GROUP_JOIN: 'consumer.group_join', CRASH: 'consumer.crash', CONNECT: 'consumer.connect', DISCONNECT: 'consumer.disconnect' } as const;

/** A producer with the kafkajs `Producer` surface the demo and `@cyb/kafka` use. */
export class StandinProducer {
  private readonly url: string;
  private bus: BusConnection | undefined;
  readonly events = {};

  constructor(url: string) {
    this.url = url;
  }

  async connect(): Promise<void> {
    this.bus ??= new BusConnection(this.url);
    await this.bus.ready;
  }

  async send(record: { topic: string; messages: StandinProducerMessage[] }): Promise<unknown[]> {
    if (!this.bus || this.bus.closed) throw new Error('The producer is disconnected');
    const messages = record.messages.map((m) => ({
      key: encodeBytes(m.key),
      value: encodeBytes(m.value),
      headers: encodeHeaders(m.headers),
      timestamp: m.timestamp ?? String(Date.now()),
    }));
    return this.bus.request<unknown[]>('kafka.produce', { topic: record.topic, messages });
  }

  async sendBatch(batch: { topicMessages?: { topic: string; messages: StandinProducerMessage[] }[] }): Promise<unknown[]> {
    const results: unknown[] = [];
    for (const tm of batch.topicMessages ?? []) results.push(...(await this.send(tm)));
    return results;
  }

  on(): () => void {
    return () => undefined;
  }

  async disconnect(): Promise<void> {
    await this.bus?.close();
  }
}

/**
 * A consumer with the kafkajs `Consumer` surface the demo and `@cyb/kafka` use (`eachMessage` only).
 * Plain `private` fields, not `#` ones: `traceConsumer` returns a Proxy that calls these methods with
 * the Proxy as `this`, and `#` fields cannot be read through one.
 */
export class StandinConsumer {
  private readonly url: string;
  private readonly groupId: string;
  private readonly emitter = new EventEmitter();
  private bus: BusConnection | undefined;
  private topics: string[] = [];
  private fromBeginning = false;
  private eachMessage: ((payload: StandinEachMessagePayload) => Promise<void>) | undefined;
  readonly events = EVENTS;

  constructor(url: string, groupId: string) {
    this.url = url;
    this.groupId = groupId;
  }

  async connect(): Promise<void> {
    this.bus ??= new BusConnection(this.url);
    await this.bus.ready;
    this.bus.on('push', (message: WireMessage) => {
      if (message.type === 'kafka.deliver' && message.groupId === this.groupId) void this.deliver(message);
    });
  }

  async subscribe(subscription: { topic?: string; topics?: string[]; fromBeginning?: boolean }): Promise<void> {
    const topics = subscription.topics ?? (subscription.topic === undefined ? [] : [subscription.topic]);
    this.topics.push(...topics);
    this.fromBeginning ||= subscription.fromBeginning === true;
  }

  async run(config: { eachMessage?: (payload: StandinEachMessagePayload) => Promise<void> }): Promise<void> {
    if (!this.bus) throw new Error('The consumer is not connected');
    if (typeof config.eachMessage !== 'function') throw new TypeError('the stand-in consumer supports eachMessage only');
    this.eachMessage = config.eachMessage;
    await this.bus.request('kafka.subscribe', { groupId: this.groupId, topics: this.topics, fromBeginning: this.fromBeginning });
    const joined = await this.bus.request<{ memberId: string; generationId: number }>('kafka.run', { groupId: this.groupId });
    this.emitter.emit(EVENTS.GROUP_JOIN, { id: 0, type: EVENTS.GROUP_JOIN, timestamp: Date.now(), payload: { groupId: this.groupId, ...joined, isLeader: true } });
  }

  private async deliver(wire: WireMessage): Promise<void> {
    const raw = wire.message as WireMessage;
    const message: StandinKafkaMessage = {
      key: decodeBytes(raw.key),
      value: decodeBytes(raw.value),
      headers: decodeHeaders(raw.headers),
      offset: String(raw.offset),
      timestamp: String(raw.timestamp),
      attributes: 0,
      size: 0,
    };
    const topic = String(wire.topic);
    try {
      await this.eachMessage?.({ topic, partition: Number(wire.partition), message, heartbeat: async () => undefined, pause: () => () => undefined });
    } catch (error) {
      // kafkajs would retry and then crash the consumer; the stand-in reports and moves on.
      debug('stand-in consumer: eachMessage failed on %s@%s: %o', topic, message.offset, error);
      this.emitter.emit(EVENTS.CRASH, { id: 0, type: EVENTS.CRASH, timestamp: Date.now(), payload: { error, groupId: this.groupId } });
    }
    this.bus?.send('kafka.commit', { groupId: this.groupId, topic, offset: Number(message.offset) });
  }

  on(event: string, listener: (event: unknown) => void): () => void {
    this.emitter.on(event, listener);
    return () => this.emitter.off(event, listener);
  }

  async stop(): Promise<void> {
    this.bus?.send('kafka.leave', { groupId: this.groupId });
  }

  async disconnect(): Promise<void> {
    await this.stop();
    await this.bus?.close();
  }
}

/**
 * A kafkajs-like client for the launcher's stand-in bus.
 *
 * @example
 * const kafka = standinKafka(process.env.KAFKA_BROKERS!);
 * const producer = traceProducer(kafka.producer() as unknown as Producer);
 */
export function standinKafka(url: string): { producer(): StandinProducer; consumer(options: { groupId: string }): StandinConsumer } {
  return {
    producer: () => new StandinProducer(url),
    consumer: (options) => new StandinConsumer(url, options.groupId),
  };
}
