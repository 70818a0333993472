import { EventEmitter } from 'node:events';
import { BusConnection } from './BusConnection.js';
import { decodeBytes, encodeBytes, type WireMessage } from './wire.js';

/** A delivered message, in amqplib's `ConsumeMessage` shape. */
export interface StandinMessage {
  content: Buffer;
  fields: { deliveryTag: number; redelivered: boolean; exchange: string; routingKey: string; consumerTag?: string; messageCount?: number };
  properties: Record<string, unknown>;
}

type OnMessage = (message: StandinMessage | null) => void;

// amqplib hands every property to a consumer, unset ones as undefined.
const PROPERTY_NAMES = [
  'contentType', 'contentEncoding', 'headers', 'deliveryMode', 'priority', 'correlationId', 'replyTo',
  'expiration', 'messageId', 'timestamp', 'type', 'userId', 'appId', 'clusterId',
] as const;

function propertiesFrom(options: Record<string, unknown> | undefined): Record<string, unknown> {
  const properties: Record<string, unknown> = {};
  if (!options) return properties;
  for (const name of PROPERTY_NAMES) if (options[name] !== undefined) properties[name] = options[name];
  if (options.persistent === true && properties.deliveryMode === undefined) properties.deliveryMode = 2;
  if (options.headers !== undefined) {
    const headers: Record<string, unknown> = {};
    // for...in, as amqplib encodes headers: inherited entries travel too.
    for (const key in options.headers as Record<string, unknown>) headers[key] = (options.headers as Record<string, unknown>)[key];
    properties.headers = headers;
  }
  return properties;
}

function toMessage(wire: WireMessage): StandinMessage {
  const properties: Record<string, unknown> = {};
  const sent = (wire.properties as Record<string, unknown>) ?? {};
  for (const name of PROPERTY_NAMES) properties[name] = sent[name];
  properties.headers = sent.headers ?? {};
  return {
    content: decodeBytes(wire.content) ?? Buffer.alloc(0),
    fields: wire.fields as StandinMessage['fields'],
    properties,
  };
}

/**
 * A channel with the amqplib promise-API surface the demo and `@cyb/amqp` use. `publish` returns
 * true (the bus never pushes back); settling and consuming behave as on RabbitMQ.
 */
export class StandinChannel extends EventEmitter {
  readonly #bus: BusConnection;
  readonly #id: number;
  readonly #consumers = new Map<string, OnMessage>();
  #open = true;

  constructor(bus: BusConnection, id: number) {
    super();
    this.#bus = bus;
    this.#id = id;
    bus.on('push', (message: WireMessage) => {
      if (message.type !== 'amqp.deliver' || message.channel !== this.#id) return;
      const onMessage = this.#consumers.get(String(message.consumerTag));
      if (onMessage) onMessage(toMessage(message.message as WireMessage));
    });
    bus.once('close', () => this.#closed());
  }

  #call<T>(op: string, body: WireMessage = {}): Promise<T> {
    if (!this.#open) return Promise.reject(new Error('Channel closed'));
    return this.#bus.request<T>(op, { ...body, channel: this.#id });
  }

  assertExchange(exchange: string, type = 'topic', _options?: object): Promise<{ exchange: string }> {
    return this.#call('amqp.assertExchange', { exchange, type });
  }

  deleteExchange(exchange: string): Promise<object> {
    return this.#call('amqp.deleteExchange', { exchange });
  }

  assertQueue(queue = '', options: { autoDelete?: boolean; exclusive?: boolean } = {}): Promise<{ queue: string; messageCount: number; consumerCount: number }> {
    return this.#call('amqp.assertQueue', { queue, autoDelete: options.autoDelete === true || options.exclusive === true });
  }

  checkQueue(queue: string): Promise<{ queue: string; messageCount: number; consumerCount: number }> {
    return this.#call('amqp.checkQueue', { queue });
  }

  deleteQueue(queue: string): Promise<{ messageCount: number }> {
    return this.#call('amqp.deleteQueue', { queue });
  }

  purgeQueue(queue: string): Promise<{ messageCount: number }> {
    return this.#call('amqp.purgeQueue', { queue });
  }

  bindQueue(queue: string, exchange: string, pattern: string): Promise<object> {
    return this.#call('amqp.bindQueue', { queue, exchange, pattern });
  }

  prefetch(count: number): Promise<object> {
    return this.#call('amqp.prefetch', { count });
  }

  publish(exchange: string, routingKey: string, content: Buffer, options?: Record<string, unknown>): boolean {
    if (!this.#open) throw new Error('Channel closed');
    if (!Buffer.isBuffer(content)) throw new TypeError('content is not a buffer');
    this.#bus.send('amqp.publish', { channel: this.#id, exchange, routingKey, content: encodeBytes(content), properties: propertiesFrom(options) });
    return true;
  }

  sendToQueue(queue: string, content: Buffer, options?: Record<string, unknown>): boolean {
    return this.publish('', queue, content, options);
  }

  async consume(queue: string, onMessage: OnMessage, options: { noAck?: boolean; consumerTag?: string } = {}): Promise<{ consumerTag: string }> {
    const reply = await this.#call<{ consumerTag: string }>('amqp.consume', { queue, noAck: options.noAck === true, consumerTag: options.consumerTag });
    this.#consumers.set(reply.consumerTag, onMessage);
    return reply;
  }

  async cancel(consumerTag: string): Promise<{ consumerTag: string }> {
    await this.#call('amqp.cancel', { consumerTag });
    this.#consumers.delete(consumerTag);
    return { consumerTag };
  }

  async get(queue: string, options: { noAck?: boolean } = {}): Promise<StandinMessage | false> {
    const reply = await this.#call<WireMessage | false>('amqp.get', { queue, noAck: options.noAck === true });
    return reply === false ? false : toMessage(reply);
  }

  #settle(message: StandinMessage | undefined, multiple: boolean, outcome: 'ack' | 'requeue' | 'drop'): void {
    if (!this.#open) throw new Error('Channel closed');
    this.#bus.send('amqp.settle', { channel: this.#id, deliveryTag: message?.fields.deliveryTag ?? 0, multiple, outcome });
  }

  ack(message: StandinMessage, allUpTo = false): void {
    this.#settle(message, allUpTo, 'ack');
  }

  nack(message: StandinMessage, allUpTo = false, requeue = true): void {
    this.#settle(message, allUpTo, requeue ? 'requeue' : 'drop');
  }

  reject(message: StandinMessage, requeue = true): void {
    this.#settle(message, false, requeue ? 'requeue' : 'drop');
  }

  ackAll(): void {
    this.#settle(undefined, true, 'ack');
  }

  nackAll(requeue = true): void {
    this.#settle(undefined, true, requeue ? 'requeue' : 'drop');
  }

  async close(): Promise<void> {
    if (!this.#open) return;
    await this.#call('amqp.closeChannel').catch(() => undefined);
    this.#closed();
  }

  #closed(): void {
    if (!this.#open) return;
    this.#open = false;
    this.#consumers.clear();
    this.emit('close');
  }
}

/** The connection: what `amqplib.connect()` returns, as far as the demo uses it. */
export class StandinAmqpConnection extends EventEmitter {
  readonly #bus: BusConnection;
  #nextChannel = 1;

  constructor(bus: BusConnection) {
    super();
    this.#bus = bus;
    bus.once('close', () => this.emit('close'));
  }

  async createChannel(): Promise<StandinChannel> {
    const id = this.#nextChannel++;
    await this.#bus.request('amqp.openChannel', { channel: id });
    return new StandinChannel(this.#bus, id);
  }

  async close(): Promise<void> {
    await this.#bus.close();
  }
}

/**
 * Connects to the launcher's stand-in bus (`cyb-standin://127.0.0.1:<port>`), as `amqplib.connect`
 * would connect to RabbitMQ.
 *
 * @example
 * const connection = await connectStandinAmqp(process.env.AMQP_URL!);
 * const channel = traceChannel(await connection.createChannel());
 */
export async function connectStandinAmqp(url: string): Promise<StandinAmqpConnection> {
  const bus = new BusConnection(url);
  await bus.ready;
  return new StandinAmqpConnection(bus);
}
