import { ROOT_CONTEXT, trace, type Context, type Link } from '@opentelemetry/api';
import { contextWithSpan, extract, inject, SpanNames, startSpan, withContext, type CybSpan } from '@cyb/core';
import { debug } from './debug.js';
import { copyCallerHeaders, hasTraceKey, isHeaderTable } from './headers.js';
import { PendingSpans, type ForcedEnd } from './PendingSpans.js';
import { stats } from './stats.js';

type Fn = (this: unknown, ...args: unknown[]) => unknown;

/** What the tracer reads from a delivered message; every field is checked before use. */
interface MessageShape {
  fields?: { deliveryTag?: unknown; redelivered?: unknown; routingKey?: unknown; exchange?: unknown };
  properties?: { headers?: unknown; messageId?: unknown; correlationId?: unknown };
  content?: unknown;
}

export interface TracerSettings {
  readonly link: boolean;
  readonly settleTimeoutMs: number;
  readonly maxPending: number;
}

// Span names made once per destination (exchange or routing key, queue).
const publishNames = new SpanNames('publish');
const processNames = new SpanNames('process');

// Attribute keys (OpenTelemetry messaging conventions; the settle ones are ours, see the README).
const ROUTING_KEY = 'messaging.rabbitmq.destination.routing_key';
const MESSAGE_ID = 'messaging.message.id';
const CONVERSATION_ID = 'messaging.message.conversation_id';
const BODY_SIZE = 'messaging.message.body.size';
const DELIVERY_TAG = 'messaging.rabbitmq.message.delivery_tag';
const SETTLE = 'messaging.rabbitmq.message.settle';
const REQUEUE = 'messaging.rabbitmq.message.requeue';
const CONFIRM = 'messaging.rabbitmq.message.confirm';

/** The context of the span each received message opened, for callers of the promise `get()`. */
export const messageContexts = new WeakMap<object, Context>();

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return value !== null && (typeof value === 'object' || typeof value === 'function') && typeof (value as { then?: unknown }).then === 'function';
}

function idText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'bigint') return String(value);
  return undefined;
}

function fault(where: string, err: unknown): void {
  stats.errors++;
  debug('%s: tracing failed and was swallowed: %o', where, err);
}

function endForced(kind: 'settle' | 'confirm', timeoutMs: number): (span: CybSpan, reason: ForcedEnd) => void {
  return (span, reason) => {
    try {
      if (reason === 'timeout') {
        stats.settleTimeouts++;
        span.fail(new Error(kind === 'settle' ? `message not settled within ${timeoutMs} ms` : `publish not confirmed within ${timeoutMs} ms`));
      } else {
        stats.pendingDropped++;
      }
      span.setAttribute(kind === 'settle' ? SETTLE : CONFIRM, reason);
      span.end();
    } catch (err) {
      fault('pending span', err);
    }
  };
}

function endSettled(span: CybSpan, outcome: string, requeue: boolean | undefined): void {
  try {
    span.setAttribute(SETTLE, outcome);
    if (requeue !== undefined) span.setAttribute(REQUEUE, requeue);
    span.end();
  } catch (err) {
    fault('end span', err);
  }
}

function endSafely(span: CybSpan): void {
  try {
    span.end();
  } catch (err) {
    fault('end span', err);
  }
}

/** Records the application's error on the span; a tracing failure here must not replace that error. */
function failSafely(span: CybSpan, error: unknown): void {
  try {
    span.fail(error);
  } catch (err) {
    fault('record error', err);
  }
}

/**
 * The tracing state of one channel: the settle table for received messages, the confirm table for
 * publishes on a confirm channel, and the wrappers patched onto the channel instance.
 */
export class ChannelTracer {
  readonly #settings: TracerSettings;
  readonly #deliveries: PendingSpans;
  readonly #confirms: PendingSpans;
  readonly #confirmChannel: boolean;
  #confirmSeq = 0;
  readonly #scratch: Record<string, unknown> = {};
  // True while sendToQueue runs: amqplib implements it with `this.publish`, which must not trace twice.
  #inSendToQueue = false;

  constructor(channel: object, settings: TracerSettings) {
    this.#settings = settings;
    this.#deliveries = new PendingSpans(settings.settleTimeoutMs, settings.maxPending, endForced('settle', settings.settleTimeoutMs));
    this.#confirms = new PendingSpans(settings.settleTimeoutMs, settings.maxPending, endForced('confirm', settings.settleTimeoutMs));
    this.#confirmChannel = typeof (channel as { waitForConfirms?: unknown }).waitForConfirms === 'function';
  }

  /** Patches the instance's own methods; the prototype, and so every other channel, is untouched. */
  install(channel: object): void {
    patch(channel, 'publish', (orig, self, args) => this.#publish(orig, self, args, false));
    patch(channel, 'sendToQueue', (orig, self, args) => this.#publish(orig, self, args, true));
    patch(channel, 'consume', (orig, self, args) => this.#consume(orig, self, args));
    patch(channel, 'get', (orig, self, args) => this.#get(orig, self, args));
    // Settling: amqplib first (a closed channel throws, and then nothing was settled), the span after.
    patch(channel, 'ack', (orig, self, args) => {
      const result = Reflect.apply(orig, self, args);
      this.#settle('ack', args[0], Boolean(args[1]), undefined);
      return result;
    });
    patch(channel, 'nack', (orig, self, args) => {
      const result = Reflect.apply(orig, self, args);
      this.#settle('nack', args[0], Boolean(args[1]), args[2] === undefined ? true : Boolean(args[2]));
      return result;
    });
    patch(channel, 'reject', (orig, self, args) => {
      const result = Reflect.apply(orig, self, args);
      this.#settle('reject', args[0], false, args[1] === undefined ? true : Boolean(args[1]));
      return result;
    });
    patch(channel, 'ackAll', (orig, self, args) => {
      const result = Reflect.apply(orig, self, args);
      this.#settleAll('ack', undefined);
      return result;
    });
    patch(channel, 'nackAll', (orig, self, args) => {
      const result = Reflect.apply(orig, self, args);
      this.#settleAll('nack', args[0] === undefined ? true : Boolean(args[0]));
      return result;
    });
    // A 'close' listener changes nothing for the application. An 'error' listener would: it would
    // swallow an error that amqplib otherwise throws, so the tracer never listens to 'error'.
    (channel as { on(event: string, fn: () => void): unknown }).on('close', () => this.#closed());
  }

  // ---- publish -------------------------------------------------------------------------------

  #publish(orig: Fn, self: unknown, args: unknown[], toQueue: boolean): unknown {
    if (this.#inSendToQueue) return Reflect.apply(orig, self, args);
    let span: CybSpan | undefined;
    let callArgs = args;
    let confirmKey = 0;
    try {
      const prepared = this.#preparePublish(args, toQueue);
      if (prepared !== undefined) ({ span, args: callArgs, confirmKey } = prepared);
    } catch (err) {
      fault('publish', err);
      span = undefined;
      callArgs = args;
    }
    if (span === undefined) return Reflect.apply(orig, self, args);
    let result: unknown;
    this.#inSendToQueue = toQueue;
    try {
      result = Reflect.apply(orig, self, callArgs);
    } catch (err) {
      // amqplib refused the message (closed channel, oversized headers): the span says so, the caller gets the same error.
      if (confirmKey !== 0) this.#confirms.take(confirmKey);
      failSafely(span, err);
      endSafely(span);
      throw err;
    } finally {
      this.#inSendToQueue = false;
    }
    if (confirmKey === 0) endSafely(span);
    return result;
  }

  #preparePublish(args: unknown[], toQueue: boolean): { span: CybSpan; args: unknown[]; confirmKey: number } | undefined {
    const optionsAt = toQueue ? 2 : 3;
    const options = args[optionsAt];
    if (options !== undefined && options !== null && typeof options !== 'object') return undefined;
    const given = options as { headers?: unknown; messageId?: unknown; correlationId?: unknown } | null | undefined;
    const callerHeaders = given?.headers;
    // amqplib builds its table with Object.create(headers); anything but an object or nothing is its error to raise.
    if (callerHeaders !== undefined && callerHeaders !== null && typeof callerHeaders !== 'object') return undefined;

    const exchange = toQueue ? '' : String(args[0]);
    const routingKey = String(toQueue ? args[0] : args[1]);
    const destination = exchange === '' ? routingKey : exchange;
    const content = args[optionsAt - 1];
    const span = startSpan(publishNames.of(destination), { kind: 'producer' });
    // Written into the span's own attributes: an object handed to startSpan would be copied.
    const attributes = span.attributes;
    attributes['messaging.system'] = 'rabbitmq';
    attributes['messaging.operation.type'] = 'send';
    attributes['messaging.operation.name'] = 'publish';
    attributes['messaging.destination.name'] = destination;
    attributes[ROUTING_KEY] = routingKey;
    if (given) {
      const messageId = idText(given.messageId);
      if (messageId !== undefined) attributes[MESSAGE_ID] = messageId;
      const correlationId = idText(given.correlationId);
      if (correlationId !== undefined) attributes[CONVERSATION_ID] = correlationId;
    }
    if (content instanceof Uint8Array) attributes[BODY_SIZE] = content.byteLength;
    stats.published++;
    try {
      return this.#withHeaders(span, args, optionsAt, given, callerHeaders as object | null | undefined);
    } catch (err) {
      endSafely(span);
      throw err;
    }
  }

  #withHeaders(
    span: CybSpan,
    args: unknown[],
    optionsAt: number,
    given: object | null | undefined,
    callerHeaders: object | null | undefined,
  ): { span: CybSpan; args: unknown[]; confirmKey: number } {
    // The caller's objects are never written to (they may be frozen, or reused for the next message).
    // The copies hold everything amqplib would read from them: it reads options by property and
    // encodes headers with for...in, so inherited settings (persistent, CC) and headers are copied too.
    let headers: Record<string, unknown>;
    if (callerHeaders) {
      headers = {};
      inject(headers, { context: contextWithSpan(span) });
      copyCallerHeaders(headers, callerHeaders);
    } else {
      headers = this.#scratchHeaders();
      inject(headers, { context: contextWithSpan(span) });
    }
    const copy: Record<string, unknown> = {};
    if (given) {
      for (const key in given) if (key !== '__proto__') copy[key] = (given as Record<string, unknown>)[key];
    }
    copy.headers = headers;

    const callArgs = args.slice();
    callArgs[optionsAt] = copy;
    let confirmKey = 0;
    if (this.#confirmChannel) {
      const callback = args[optionsAt + 1];
      if (callback === undefined || callback === null || callback === false || typeof callback === 'function') {
        confirmKey = ++this.#confirmSeq;
        this.#confirms.add(confirmKey, span);
        callArgs[optionsAt + 1] = this.#confirmCallback(confirmKey, callback as Fn | null | undefined | false);
      }
    }
    return { span, args: callArgs, confirmKey };
  }

  /**
   * The headers object for a publish without caller headers, reused message after message. amqplib
   * encodes the headers synchronously inside publish and keeps nothing (every version since 0.10 does
   * `Object.create(options.headers)` then encodes it before returning), so one object serves all
   * messages. It matters for speed: amqplib's for...in over a prototype that is a new object each
   * time costs more than all of the tracing; over the same object it is cheap. Keys of the previous
   * message are blanked with undefined, which amqplib does not encode, so the shape stays put.
   */
  #scratchHeaders(): Record<string, unknown> {
    const headers = this.#scratch;
    for (const key in headers) headers[key] = undefined;
    return headers;
  }

  #confirmCallback(key: number, callback: Fn | null | undefined | false): Fn {
    const confirms = this.#confirms;
    return function confirmed(this: unknown, ...args: unknown[]): unknown {
      try {
        const span = confirms.take(key);
        if (span !== undefined) {
          const err = args[0];
          if (err !== null && err !== undefined) {
            // amqplib fails every unconfirmed callback with this error when the channel closes.
            const closed = err instanceof Error && err.message === 'channel closed';
            if (closed) stats.closedUnsettled++;
            span.fail(err);
            span.setAttribute(CONFIRM, closed ? 'channel_closed' : 'nack');
          } else {
            span.setAttribute(CONFIRM, 'ack');
          }
          span.end();
        }
      } catch (e) {
        fault('confirm', e);
      }
      return typeof callback === 'function' ? Reflect.apply(callback, this, args) : undefined;
    };
  }

  // ---- consume and get ------------------------------------------------------------------------

  #consume(orig: Fn, self: unknown, args: unknown[]): unknown {
    const onMessage = args[1];
    if (typeof onMessage !== 'function') return Reflect.apply(orig, self, args);
    let traced: Fn;
    try {
      const noAck = Boolean((args[2] as { noAck?: unknown } | null | undefined)?.noAck);
      traced = this.#tracedHandler(String(args[0]), noAck, 'consume', onMessage as Fn);
    } catch (err) {
      fault('consume', err);
      return Reflect.apply(orig, self, args);
    }
    const callArgs = args.slice();
    callArgs[1] = traced;
    return Reflect.apply(orig, self, callArgs);
  }

  #get(orig: Fn, self: unknown, args: unknown[]): unknown {
    let queue: string;
    let noAck: boolean;
    try {
      queue = String(args[0]);
      noAck = Boolean((args[1] as { noAck?: unknown } | null | undefined)?.noAck);
    } catch (err) {
      fault('get', err);
      return Reflect.apply(orig, self, args);
    }
    const callback = args[2];
    if (typeof callback === 'function') {
      // Callback API: the callback runs inside the message's context, like a consumer.
      const handler = this.#tracedHandler(queue, noAck, 'get', callback as Fn, 1);
      const callArgs = args.slice();
      callArgs[2] = handler;
      return Reflect.apply(orig, self, callArgs);
    }
    const result = Reflect.apply(orig, self, args);
    if (!isThenable(result)) return result;
    // Promise API: the span opens before the caller sees the message, so an ack in the caller's
    // continuation finds it. The caller gets a promise that settles exactly as amqplib's did.
    return result.then((message) => {
      try {
        if (message !== null && typeof message === 'object') {
          const { span } = this.#receive(queue, message as MessageShape, 'get', noAck);
          if (noAck) endSettled(span, 'auto', undefined);
        }
      } catch (err) {
        fault('get', err);
      }
      return message;
    });
  }

  /**
   * Wraps a function that receives a message (a consumer, or a get callback whose message is
   * argument `messageAt`) so it runs inside the message's span.
   */
  #tracedHandler(queue: string, noAck: boolean, operation: 'consume' | 'get', handler: Fn, messageAt = 0): Fn {
    const receive = (message: MessageShape): { span: CybSpan; ctx: Context } => this.#receive(queue, message, operation, noAck);
    return function traced(this: unknown, ...args: unknown[]): unknown {
      const message = args[messageAt];
      // null is the broker cancelling the consumer; a get callback's error has no message either.
      if (message === null || typeof message !== 'object' || (messageAt > 0 && args[0] !== null && args[0] !== undefined)) {
        return Reflect.apply(handler, this, args);
      }
      let span: CybSpan;
      let ctx: Context;
      try {
        ({ span, ctx } = receive(message as MessageShape));
      } catch (err) {
        fault(operation, err);
        return Reflect.apply(handler, this, args);
      }
      let result: unknown;
      try {
        result = withContext(ctx, () => Reflect.apply(handler, this, args));
      } catch (err) {
        failSafely(span, err);
        if (noAck) endSettled(span, 'auto', undefined);
        throw err;
      }
      if (isThenable(result)) {
        // amqplib ignores what a consumer returns, so nobody else observes this promise. Rethrowing
        // keeps an unhandled rejection unhandled, with the same error, as it was without tracing.
        return result.then(
          (value) => {
            if (noAck) endSettled(span, 'auto', undefined);
            return value;
          },
          (err: unknown) => {
            failSafely(span, err);
            if (noAck) endSettled(span, 'auto', undefined);
            throw err;
          },
        );
      }
      if (noAck) endSettled(span, 'auto', undefined);
      return result;
    };
  }

  /** Opens the CONSUMER span of a received message and, unless noAck, waits for its settle. */
  #receive(queue: string, message: MessageShape, operation: 'consume' | 'get', noAck: boolean): { span: CybSpan; ctx: Context } {
    stats.received++;
    const fields = message.fields;
    const properties = message.properties;
    const headers = properties?.headers;
    // extract gives a context without a span for baggage alone or a B3 sampling-only header: still no parent.
    const parent = isHeaderTable(headers) ? extract(headers) : undefined;
    const remote = parent === undefined ? undefined : trace.getSpanContext(parent);
    if (remote === undefined) {
      if (parent === undefined && isHeaderTable(headers) && hasTraceKey(headers)) stats.malformedContext++;
      else stats.missingContext++;
    }

    const tag = fields?.deliveryTag;
    const name = queue === '' ? 'process' : processNames.of(queue);
    let span: CybSpan;
    if (this.#settings.link && remote !== undefined) {
      // Fan-in: the message's trace is a link; this span starts a trace of its own.
      const links: Link[] = [{ context: remote }];
      span = startSpan(name, { kind: 'consumer', parent: null, links });
    } else {
      span = startSpan(name, { kind: 'consumer', parent: parent ?? null });
    }
    const attributes = span.attributes;
    attributes['messaging.system'] = 'rabbitmq';
    attributes['messaging.operation.type'] = operation === 'consume' ? 'process' : 'receive';
    attributes['messaging.operation.name'] = operation;
    attributes['messaging.destination.name'] = queue;
    attributes['messaging.rabbitmq.message.redelivered'] = fields?.redelivered === true;
    // Set now and overwritten when the span ends: the key exists from the start, so the end does not
    // reshape the attributes object. Every end path writes the real outcome.
    attributes[SETTLE] = 'pending';
    if (typeof tag === 'number') attributes[DELIVERY_TAG] = tag;
    if (typeof fields?.routingKey === 'string') attributes[ROUTING_KEY] = fields.routingKey;
    const messageId = idText(properties?.messageId);
    if (messageId !== undefined) attributes[MESSAGE_ID] = messageId;
    const correlationId = idText(properties?.correlationId);
    if (correlationId !== undefined) attributes[CONVERSATION_ID] = correlationId;
    if (message.content instanceof Uint8Array) attributes[BODY_SIZE] = message.content.byteLength;
    // The base is the message's context (its baggage) or the root, never the active one: amqplib
    // delivers in the socket's async context, which belongs to whoever happened to connect.
    const ctx = contextWithSpan(span, parent ?? ROOT_CONTEXT);
    // Only `get` needs it: a consumer callback already runs inside ctx.
    if (operation === 'get') messageContexts.set(message, ctx);
    if (!noAck) {
      if (typeof tag === 'number') this.#deliveries.add(tag, span);
      else endSettled(span, 'unknown', undefined);
    }
    return { span, ctx };
  }

  // ---- settle and close -----------------------------------------------------------------------

  #settle(outcome: 'ack' | 'nack' | 'reject', message: unknown, upTo: boolean, requeue: boolean | undefined): void {
    try {
      const tag = (message as MessageShape | null | undefined)?.fields?.deliveryTag;
      if (typeof tag !== 'number') return;
      if (upTo) this.#deliveries.takeUpTo(tag, (span) => endSettled(span, outcome, requeue));
      else {
        const span = this.#deliveries.take(tag);
        if (span !== undefined) endSettled(span, outcome, requeue);
      }
    } catch (err) {
      fault(outcome, err);
    }
  }

  #settleAll(outcome: 'ack' | 'nack', requeue: boolean | undefined): void {
    try {
      this.#deliveries.takeAll((span) => endSettled(span, outcome, requeue));
    } catch (err) {
      fault(`${outcome}All`, err);
    }
  }

  #closed(): void {
    try {
      this.#deliveries.stop();
      this.#confirms.stop();
      // amqplib has already failed the confirm callbacks it knew of (its own 'close' listener runs
      // first); what is left here had no callback to fail.
      const end = (what: string, attribute: string) => (span: CybSpan): void => {
        stats.closedUnsettled++;
        // A handler that threw has already said why; that error stays the span's status.
        if (span.status.code !== 'error') span.fail(new Error(`channel closed before the ${what}`));
        span.setAttribute(attribute, 'channel_closed');
        span.end();
      };
      this.#deliveries.takeAll(end('message was settled', SETTLE));
      this.#confirms.takeAll(end('broker confirmed the publish', CONFIRM));
    } catch (err) {
      fault('close', err);
    }
  }
}

type Handler = (orig: Fn, self: unknown, args: unknown[]) => unknown;

function patch(target: object, name: string, handler: Handler): void {
  const orig = (target as Record<string, unknown>)[name];
  if (typeof orig !== 'function') return;
  const wrapped = function (this: unknown, ...args: unknown[]): unknown {
    return handler(orig as Fn, this, args);
  };
  // Same name and length as amqplib's method; non-enumerable like the prototype method it shadows,
  // so Object.keys(channel) stays as it was.
  Object.defineProperty(wrapped, 'name', { value: name });
  Object.defineProperty(wrapped, 'length', { value: (orig as Fn).length });
  Object.defineProperty(target, name, { value: wrapped, writable: true, configurable: true, enumerable: false });
}
