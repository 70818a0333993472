import type { Context } from '@opentelemetry/api';
import { ChannelTracer, messageContexts } from './internal/ChannelTracer.js';
import { debug } from './internal/debug.js';
import { stats, type AmqpStats } from './internal/stats.js';

/** Options of `traceChannel`. */
export interface TraceChannelOptions {
  /**
   * Make each CONSUMER span a new trace that links to the producer's span, instead of its child.
   * For fan-in, where one consumer gathers messages from many traces. Default false.
   */
  link?: boolean;
  /**
   * How long a received message's span waits for `ack`/`nack`/`reject` (and a confirm channel's
   * publish span for the broker's confirm) before it is ended with an error. Default 300000 (5 min).
   */
  settleTimeoutMs?: number;
  /**
   * How many spans may wait for a settle on this channel (and, separately, for a confirm). Past it the
   * oldest is ended and counted in `amqpStats().pendingDropped`. Default 10000.
   */
  maxPending?: number;
}

/**
 * The methods `traceChannel` instruments. Both the promise and the callback amqplib channel, plain or
 * confirm, have them; the signatures are left open so either library's typings fit.
 */
export interface AmqpChannelLike {
  publish(...args: never[]): unknown;
  sendToQueue(...args: never[]): unknown;
  consume(...args: never[]): unknown;
  get(...args: never[]): unknown;
  ack(...args: never[]): unknown;
  nack(...args: never[]): unknown;
  reject(...args: never[]): unknown;
  ackAll(...args: never[]): unknown;
  nackAll(...args: never[]): unknown;
  on(...args: never[]): unknown;
}

const traced = new WeakSet<object>();

function positive(value: unknown, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !(value > 0) || !Number.isFinite(value)) {
    throw new TypeError(`traceChannel: ${name} must be a positive finite number, got ${String(value)}`);
  }
  return value;
}

/**
 * Instruments an amqplib channel in place and returns it: the same object, so `instanceof`, events,
 * callbacks and return values (the `publish` backpressure boolean) are exactly amqplib's.
 *
 * - `publish`/`sendToQueue` inject W3C, B3 and baggage headers into a copy of the options and record
 *   a PRODUCER span `publish <exchange>` (`publish <queue>` on the default exchange). On a confirm
 *   channel the span ends at the broker's confirm; a nack marks it as an error.
 * - `consume` callbacks (and `get` results) open a CONSUMER span `process <queue>`, child of the
 *   producer's span (or linked to it with `link: true`); the callback runs inside it. The span ends at
 *   `ack`/`nack`/`reject`/`ackAll`/`nackAll` or when the channel closes; with `noAck`, when the
 *   callback and the promise it returned are done.
 *
 * Works with `amqplib` (promise API) and `amqplib/callback_api`, `Channel` and `ConfirmChannel`.
 * Instrumenting a channel twice is a no-op.
 *
 * @example
 * import amqplib from 'amqplib';
 * import { traceChannel } from '@cyb/amqp';
 *
 * const connection = await amqplib.connect('amqp://127.0.0.1');
 * const channel = traceChannel(await connection.createChannel());
 * channel.sendToQueue('orders', Buffer.from(JSON.stringify(order)));
 * await channel.consume('orders', async (msg) => {
 *   if (msg === null) return;
 *   await handle(msg); // runs inside `process orders`, child of `publish orders`
 *   channel.ack(msg); // ends the span
 * });
 */
export function traceChannel<C extends AmqpChannelLike>(channel: C, options: TraceChannelOptions = {}): C {
  if (channel === null || typeof channel !== 'object' || typeof channel.publish !== 'function' || typeof channel.consume !== 'function') {
    throw new TypeError('traceChannel: expected an amqplib Channel or ConfirmChannel');
  }
  if (options === null || typeof options !== 'object') throw new TypeError('traceChannel: options must be an object');
  const settings = {
    link: options.link === true,
    settleTimeoutMs: positive(options.settleTimeoutMs, 'settleTimeoutMs', 300_000),
    maxPending: Math.floor(positive(options.maxPending, 'maxPending', 10_000)) || 1,
  };
  if (traced.has(channel)) {
    debug('traceChannel: channel already traced; the second call changes nothing');
    return channel;
  }
  traced.add(channel);
  new ChannelTracer(channel, settings).install(channel);
  return channel;
}

/**
 * The context of the CONSUMER span a traced channel opened for `message`, for code that did not run
 * inside it: the continuation of the promise `get()`, or work handed on elsewhere.
 *
 * @example
 * const msg = await channel.get('orders');
 * if (msg) await withContext(messageContext(msg)!, () => handle(msg));
 */
export function messageContext(message: object): Context | undefined {
  return message !== null && typeof message === 'object' ? messageContexts.get(message) : undefined;
}

/**
 * A copy of the process-wide counters of every traced channel.
 *
 * @example
 * const { missingContext, settleTimeouts } = amqpStats();
 */
export function amqpStats(): AmqpStats {
  return { ...stats };
}
