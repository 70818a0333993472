import type { Channel, ConfirmChannel, ConsumeMessage, Options } from 'amqplib';
import { currentSpan, shallowCopy } from '@cyb/core';
import { traceChannel } from '@cyb/amqp';
import type { Vsm, VsmMeta, VsmSend } from './create-vsm.js';
import { debug, failures } from './internal/debug.js';
import { UnknownOperationError } from './UnknownOperationError.js';

/** Where system and operation are read from, or your own reader. */
export type VsmRoute =
  /** Routing key `<system>.<operation>` (`s1.operation`); the content is the payload. */
  | 'routing-key'
  /** JSON content `{ system, operation, payload, meta? }`, on any routing key. */
  | 'body'
  | ((message: ConsumeMessage) => { system: string; operation: string; payload: unknown; meta?: VsmMeta } | undefined);

/**
 * What happens to a message that cannot be dispatched:
 * - `'dead-letter'`: a copy (same content, properties and headers, plus `x-vsm-error*` headers) is
 *   published to the dead-letter target, then the original is acked. If that publish fails, the original
 *   is requeued instead. On a confirm channel the ack waits for the broker's confirm.
 * - `'nack'`: `nack` with requeue, for another consumer that knows the operation.
 * - `'reject'`: `reject` without requeue: the queue's own dead-letter exchange (`x-dead-letter-exchange`)
 *   takes it; a queue without one drops it.
 */
export type VsmSettle = 'dead-letter' | 'nack' | 'reject';

/** Options of `consumeVsm()`. */
export interface ConsumeVsmOptions {
  /** Default `'routing-key'`. */
  route?: VsmRoute;
  /** Exchange `ctx.send` publishes to; default the exchange the current message came through. */
  exchange?: string;
  /** An unknown system or operation, or content that does not decode. Default `'dead-letter'`. */
  onUnknown?: VsmSettle;
  /** A handler that threw or rejected. Default `'dead-letter'`. */
  onError?: VsmSettle;
  /**
   * The dead-letter target: an exchange (with `routingKey`, default the original routing key) or a
   * queue; either must exist. Default: the durable queue `<queue>.dead-letter`, asserted when
   * consuming starts.
   */
  deadLetter?: { exchange: string; routingKey?: string } | { queue: string };
  /** Options passed to `channel.consume` (`noAck` is always false: settling is this consumer's job). */
  consume?: Options.Consume;
}

/** A running VSM consumer. */
export interface VsmConsumer {
  readonly queue: string;
  readonly consumerTag: string;
  /** Stops consuming; messages in flight still finish and settle. */
  cancel(): Promise<void>;
}

const META_HEADER = 'x-vsm-meta';

type AnyChannel = Channel | ConfirmChannel;

function isConfirm(channel: AnyChannel): channel is ConfirmChannel {
  return typeof (channel as ConfirmChannel).waitForConfirms === 'function';
}

/** Publishes and resolves once the broker has it (confirm channel) or the channel can take more. */
function publishSafely(channel: AnyChannel, exchange: string, routingKey: string, content: Buffer, options: Options.Publish): Promise<void> {
  if (isConfirm(channel)) {
    return new Promise((resolve, reject) => {
      channel.publish(exchange, routingKey, content, options, (err) => (err ? reject(err instanceof Error ? err : new Error(`broker nacked the publish to "${exchange}"`)) : resolve()));
    });
  }
  if (channel.publish(exchange, routingKey, content, options)) return Promise.resolve();
  // Backpressure: the send resolves when the channel drains, or fails if it closes first.
  return new Promise((resolve, reject) => {
    const onDrain = (): void => {
      channel.off('close', onClose);
      resolve();
    };
    const onClose = (): void => {
      channel.off('drain', onDrain);
      reject(new Error('channel closed before it drained'));
    };
    channel.once('drain', onDrain);
    channel.once('close', onClose);
  });
}

function decodeJson(message: ConsumeMessage): unknown {
  const type = message.properties.contentType as string | undefined;
  if (type !== undefined && !/json/i.test(type)) return message.content;
  return JSON.parse(message.content.toString('utf8')) as unknown;
}

function headerMeta(message: ConsumeMessage): Record<string, unknown> {
  const raw = (message.properties.headers as Record<string, unknown> | undefined)?.[META_HEADER];
  if (raw === undefined) return {};
  try {
    const parsed = JSON.parse(Buffer.isBuffer(raw) ? raw.toString('utf8') : String(raw)) as unknown;
    return parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

function amqpMeta(message: ConsumeMessage): Record<string, unknown> {
  const { exchange, routingKey, deliveryTag, redelivered } = message.fields;
  const { messageId, correlationId, headers } = message.properties as { messageId?: string; correlationId?: string; headers?: Record<string, unknown> };
  return { exchange, routingKey, deliveryTag, redelivered, messageId, correlationId, headers };
}

interface Routed {
  system: string;
  operation: string;
  payload: unknown;
  meta: VsmMeta;
  /** Bytes of the payload on the wire, when the whole body is the payload. */
  size?: number;
}

/** The message's own meta with the AMQP details added, as an ordinary object (see `shallowCopy`). */
function withAmqp(meta: object | undefined, amqp: Record<string, unknown>): VsmMeta {
  const out: Record<string, unknown> = meta === undefined || meta === null ? {} : shallowCopy(meta as Record<string, unknown>);
  out.amqp = amqp;
  return out;
}

/** Reads system, operation and payload; throws UnknownOperationError when the message names none. */
function routeMessage(route: VsmRoute, message: ConsumeMessage): Routed {
  const amqp = amqpMeta(message);
  if (typeof route === 'function') {
    const r = route(message);
    if (r === undefined || typeof r.system !== 'string' || typeof r.operation !== 'string') {
      throw new UnknownOperationError(String(r?.system ?? ''), String(r?.operation ?? ''), `route() found no system and operation in the message from "${message.fields.routingKey}"`);
    }
    return { system: r.system, operation: r.operation, payload: r.payload, meta: withAmqp(r.meta, amqp) };
  }
  if (route === 'body') {
    let body: unknown;
    try {
      body = JSON.parse(message.content.toString('utf8'));
    } catch {
      throw new UnknownOperationError('', '', 'message content is not JSON, so it names no system and operation');
    }
    const b = body as { system?: unknown; operation?: unknown; payload?: unknown; meta?: unknown } | null;
    if (b === null || typeof b !== 'object' || typeof b.system !== 'string' || typeof b.operation !== 'string') {
      throw new UnknownOperationError('', '', 'message content has no string "system" and "operation" fields');
    }
    const meta = b.meta !== null && typeof b.meta === 'object' ? (b.meta as Record<string, unknown>) : {};
    return { system: b.system, operation: b.operation, payload: b.payload, meta: withAmqp(meta, amqp) };
  }
  const key = message.fields.routingKey;
  const dot = key.indexOf('.');
  if (dot <= 0 || dot === key.length - 1) {
    throw new UnknownOperationError(dot <= 0 ? '' : key.slice(0, dot), '', `routing key "${key}" is not <system>.<operation>`);
  }
  const system = key.slice(0, dot);
  const operation = key.slice(dot + 1);
  let payload: unknown;
  try {
    payload = decodeJson(message);
  } catch {
    throw new UnknownOperationError(system, operation, `content of ${key} is not valid JSON`);
  }
  return { system, operation, payload, meta: withAmqp(headerMeta(message), amqp), size: message.content.length };
}

/**
 * Consumes `queue` and dispatches each message to `vsm`: system and operation from the routing key
 * (`s2.coordinate`) or the content, by `options.route`. Runs through `@cyb/amqp` (the channel is
 * traced in place if it is not yet), so each dispatch span is a child of the message's CONSUMER span,
 * and a handler's `ctx.send(system, operation, payload)` publishes over the broker with the context
 * injected: one request crosses S1 -> S5 as one trace. A message is acked once its handler finishes;
 * one that names no known operation, or whose handler fails, is settled by `onUnknown`/`onError` and
 * never dropped silently.
 *
 * @example
 * import amqplib from 'amqplib';
 * import { consumeVsm, createVsm } from '@cyb/vsm';
 *
 * const channel = await (await amqplib.connect(url)).createConfirmChannel();
 * await channel.assertExchange('vsm', 'topic');
 * await channel.bindQueue('vsm.s1', 'vsm', 's1.*');
 * const consumer = await consumeVsm(channel, 'vsm.s1', vsm, { onUnknown: 'dead-letter' });
 * // later: await consumer.cancel();
 */
export async function consumeVsm(channel: AnyChannel, queue: string, vsm: Vsm, options: ConsumeVsmOptions = {}): Promise<VsmConsumer> {
  if (channel === null || typeof channel !== 'object' || typeof channel.consume !== 'function') {
    throw new TypeError('consumeVsm: expected an amqplib Channel or ConfirmChannel');
  }
  if (typeof queue !== 'string' || queue === '') throw new TypeError('consumeVsm: queue must be a non-empty string');
  if (vsm === null || typeof vsm !== 'object' || typeof vsm.dispatch !== 'function') throw new TypeError('consumeVsm: expected a Vsm from createVsm()');
  const { route = 'routing-key', onUnknown = 'dead-letter', onError = 'dead-letter' } = options;
  for (const [name, value] of [['onUnknown', onUnknown], ['onError', onError]] as const) {
    if (value !== 'dead-letter' && value !== 'nack' && value !== 'reject') {
      throw new TypeError(`consumeVsm: ${name} must be 'dead-letter', 'nack' or 'reject', got ${String(value)}`);
    }
  }
  if (route !== 'routing-key' && route !== 'body' && typeof route !== 'function') {
    throw new TypeError(`consumeVsm: route must be 'routing-key', 'body' or a function`);
  }

  traceChannel(channel);

  let deadLetter: { exchange: string; routingKey?: string } | undefined;
  if (onUnknown === 'dead-letter' || onError === 'dead-letter') {
    const target = options.deadLetter;
    if (target === undefined) {
      // Only the default queue is declared here: declaring one the application owns with other
      // arguments would be a channel error that closes the application's channel.
      const name = `${queue}.dead-letter`;
      await channel.assertQueue(name, { durable: true });
      deadLetter = { exchange: '', routingKey: name };
    } else if ('queue' in target) {
      deadLetter = { exchange: '', routingKey: target.queue };
    } else {
      deadLetter = target;
    }
  }

  const sendFor = (message: ConsumeMessage): VsmSend => {
    const exchange = options.exchange ?? message.fields.exchange;
    const correlationId = (message.properties as { correlationId?: string }).correlationId;
    return (system, operation, payload, meta) => {
      const publishOptions: Options.Publish = { contentType: 'application/json', persistent: true };
      if (correlationId !== undefined) publishOptions.correlationId = correlationId;
      let content: Buffer;
      let routingKey: string;
      if (route === 'body') {
        content = Buffer.from(JSON.stringify({ system, operation, payload, meta }));
        routingKey = message.fields.routingKey;
      } else {
        content = Buffer.from(JSON.stringify(payload ?? null));
        routingKey = `${system}.${operation}`;
        if (meta !== undefined) publishOptions.headers = { [META_HEADER]: JSON.stringify(meta) };
      }
      return publishSafely(channel, exchange, routingKey, content, publishOptions);
    };
  };

  const settle = async (message: ConsumeMessage, how: VsmSettle, error: unknown, kind: 'unknown-operation' | 'handler-error'): Promise<void> => {
    if (how === 'nack') return channel.nack(message, false, true);
    if (how === 'reject') return channel.reject(message, false);
    const target = deadLetter as { exchange: string; routingKey?: string };
    const properties = message.properties as Options.Publish & { headers?: Record<string, unknown> };
    const copy: Options.Publish = {};
    for (const [k, v] of Object.entries(properties)) {
      if (v !== undefined && k !== 'headers') (copy as Record<string, unknown>)[k] = v;
    }
    copy.headers = {
      ...properties.headers,
      'x-vsm-error': kind,
      'x-vsm-error-message': error instanceof Error ? error.message : String(error),
      'x-vsm-original-exchange': message.fields.exchange,
      'x-vsm-original-routing-key': message.fields.routingKey,
    };
    try {
      await publishSafely(channel, target.exchange, target.routingKey ?? message.fields.routingKey, message.content, copy);
    } catch (err) {
      debug('dead-letter publish failed, requeueing %s: %o', message.fields.routingKey, err);
      channel.nack(message, false, true);
      return;
    }
    channel.ack(message);
  };

  const onMessage = async (message: ConsumeMessage | null): Promise<void> => {
    if (message === null) return; // the broker cancelled the consumer
    let routed: Routed | undefined;
    try {
      routed = routeMessage(route, message);
      await vsm.dispatch(routed.system, routed.operation, routed.payload, routed.meta, { send: sendFor(message), payloadSize: routed.size });
    } catch (err) {
      const unknown = err instanceof UnknownOperationError;
      if (unknown && routed === undefined) {
        // Never reached dispatch, so no dispatch span holds the error: put it on the message's span.
        try {
          const s = currentSpan() as { fail?: (e: unknown) => void } | undefined;
          s?.fail?.(err);
        } catch (traceErr) {
          failures.tracing++;
          debug('recording an unroutable message failed: %o', traceErr);
        }
      }
      try {
        await settle(message, unknown ? onUnknown : onError, err, unknown ? 'unknown-operation' : 'handler-error');
      } catch (settleErr) {
        debug('settling %s failed: %o', message.fields.routingKey, settleErr);
      }
      return;
    }
    try {
      channel.ack(message);
    } catch (err) {
      debug('ack of %s failed: %o', message.fields.routingKey, err);
    }
  };

  const { consumerTag } = await channel.consume(
    queue,
    (message) => {
      void onMessage(message);
    },
    { ...options.consume, noAck: false },
  );
  return {
    queue,
    consumerTag,
    async cancel() {
      await channel.cancel(consumerTag);
    },
  };
}
