import { contextWithSpan, propagationFormats, spanContextOf, startSpan, type PropagationFormat, type SpanContext } from '@cyb/core';
import type {
  Consumer,
  ConsumerRunConfig,
  EachBatchHandler,
  EachBatchPayload,
  EachMessageHandler,
  EachMessagePayload,
} from 'kafkajs';
import { baseAttributes, spanName } from './internal/attributes.js';
import { BatchTrace, batchTraces } from './internal/BatchTrace.js';
import { nowMs } from './internal/clock.js';
import { extractFrom, writeProcessAttributes, type ConsumerSettings } from './internal/consumer-settings.js';
import { tracingFailed } from './internal/debug.js';
import { runInContext, runInSpan } from './internal/run-in-span.js';

/** Options of `traceConsumer`. */
export interface TraceConsumerOptions {
  /**
   * The consumer group, for `messaging.consumer.group.name`. kafkajs does not expose it on the consumer,
   * so by default it is read from the consumer's GROUP_JOIN event.
   */
  groupId?: string;
  /** Record `messaging.kafka.message.key` (string keys, and Buffer keys that are valid UTF-8). Default true. */
  captureKey?: boolean;
  /**
   * At most this many distinct producer contexts are linked from one batch's receive span; the rest of the
   * batch's messages still get their own process spans. Default 100.
   */
  maxBatchLinks?: number;
  /** Propagation formats read from the headers, in order; default the ones set with `configure()` in @cyb/core. */
  formats?: readonly PropagationFormat[];
}

const TRACED = Symbol.for('cyb.kafka.traced');

function wrapEachMessage(handler: EachMessageHandler, settings: ConsumerSettings): EachMessageHandler {
  return function eachMessage(this: unknown, payload: EachMessagePayload): Promise<void> {
    let span;
    let ctx;
    try {
      const parent = extractFrom(settings, payload.message);
      // A message without (valid) trace headers starts a new trace rather than joining whatever
      // happened to be active around consumer.run().
      span = startSpan(spanName('process', payload.topic), { kind: 'consumer', parent: parent ?? null });
      writeProcessAttributes(span.attributes, settings, payload.topic, payload.partition, payload.message);
      ctx = contextWithSpan(span, parent);
    } catch (err) {
      tracingFailed('eachMessage', err);
      span?.end();
      return handler.call(this, payload);
    }
    return runInSpan(span, ctx, () => handler.call(this, payload));
  };
}

function wrapEachBatch(handler: EachBatchHandler, settings: ConsumerSettings, autoResolve: boolean): EachBatchHandler {
  return function eachBatch(this: unknown, payload: EachBatchPayload): Promise<void> {
    let trace: BatchTrace;
    let traced: EachBatchPayload;
    try {
      const { batch } = payload;
      const messages = batch.messages;
      const parents = new Array<ReturnType<typeof extractFrom>>(messages.length);
      const links: { context: SpanContext }[] = [];
      const linked = new Set<string>();
      for (let i = 0; i < messages.length; i++) {
        const parent = extractFrom(settings, messages[i]!);
        parents[i] = parent;
        if (parent === undefined || links.length >= settings.maxBatchLinks) continue;
        const sc = spanContextOf(parent);
        if (sc === undefined) continue;
        // Many messages of one batch often come from one producer span (a sendBatch, a fan-out).
        const key = sc.traceId + sc.spanId;
        if (linked.has(key)) continue;
        linked.add(key);
        links.push({ context: sc });
      }
      const attributes = baseAttributes(batch.topic, 'receive');
      attributes['messaging.destination.partition.id'] = String(batch.partition);
      attributes['messaging.batch.message_count'] = messages.length;
      if (settings.groupId !== undefined) attributes['messaging.consumer.group.name'] = settings.groupId;
      // The batch is not the child of any one producer; it links to all of them.
      const receive = startSpan(spanName('receive', batch.topic), { kind: 'consumer', parent: null, links, attributes });
      // The first message's work starts when the handler does, which is after the receive span began.
      trace = new BatchTrace(settings, batch, receive, parents, nowMs());
      const original = payload.resolveOffset;
      traced = {
        ...payload,
        resolveOffset: function resolveOffset(offset: string): void {
          try {
            trace.resolve(String(offset));
          } catch (err) {
            tracingFailed('resolveOffset', err);
          }
          return original(offset);
        },
      };
      batchTraces.set(batch, trace);
    } catch (err) {
      tracingFailed('eachBatch', err);
      return handler.call(this, payload);
    }
    return runInContext(
      trace.receiveContext,
      () => handler.call(this, traced),
      (failure) => {
        batchTraces.delete(payload.batch);
        trace.finish(failure, autoResolve);
        if (failure) trace.receive.fail(failure.error);
        trace.receive.end();
      },
    );
  };
}

/**
 * Wraps a kafkajs consumer so that `run({ eachMessage })` handles every message inside a CONSUMER span
 * `process <topic>`, child of the span that produced it, with that span's context active; and
 * `run({ eachBatch })` runs inside a `receive <topic>` span linked to every message's producer, with a
 * `process <topic>` span per message in the producer's trace (see `traceBatchMessage` for how the
 * batch's per-message work is scoped). Everything else is the consumer's own; handler results and errors
 * pass through unchanged.
 *
 * @example
 * const consumer = traceConsumer(kafka.consumer({ groupId: 'billing' }));
 * await consumer.connect();
 * await consumer.subscribe({ topic: 'orders' });
 * await consumer.run({ eachMessage: async ({ message }) => bill(JSON.parse(String(message.value))) });
 */
export function traceConsumer<C extends Consumer>(consumer: C, options: TraceConsumerOptions = {}): C {
  if (consumer === null || typeof consumer !== 'object' || typeof consumer.run !== 'function') {
    throw new TypeError('traceConsumer expects a kafkajs consumer');
  }
  const { groupId, captureKey = true, maxBatchLinks = 100, formats } = options;
  if (!Number.isInteger(maxBatchLinks) || maxBatchLinks < 0) {
    throw new RangeError(`maxBatchLinks must be a non-negative integer, got ${String(maxBatchLinks)}`);
  }
  if ((consumer as { [TRACED]?: unknown })[TRACED] === true) return consumer;
  const settings: ConsumerSettings = {
    captureKey,
    maxBatchLinks,
    extract: formats === undefined ? undefined : { formats: propagationFormats(formats, 'formats') },
    groupId,
  };
  if (groupId === undefined) {
    try {
      consumer.on(consumer.events.GROUP_JOIN, (event) => {
        settings.groupId = event.payload.groupId;
      });
    } catch (err) {
      tracingFailed('group id', err);
    }
  }
  const overrides: Record<PropertyKey, unknown> = {
    [TRACED]: true,
    run: function run(config?: ConsumerRunConfig): Promise<void> {
      let tracedConfig = config;
      try {
        if (config !== null && typeof config === 'object') {
          tracedConfig = { ...config };
          if (typeof config.eachMessage === 'function') tracedConfig.eachMessage = wrapEachMessage(config.eachMessage, settings);
          if (typeof config.eachBatch === 'function') {
            tracedConfig.eachBatch = wrapEachBatch(config.eachBatch, settings, config.eachBatchAutoResolve !== false);
          }
        }
      } catch (err) {
        tracingFailed('run', err);
        tracedConfig = config;
      }
      return consumer.run(tracedConfig);
    },
  };
  return new Proxy(consumer, {
    get(target, property) {
      return Object.prototype.hasOwnProperty.call(overrides, property) ? overrides[property] : Reflect.get(target, property, target);
    },
  });
}
