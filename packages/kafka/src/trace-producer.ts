import { contextWithSpan, propagationFormats, shallowCopy, startSpan, type CybSpan, type PropagationFormat } from '@cyb/core';
import type { Message, Producer, ProducerBatch, ProducerRecord, RecordMetadata, Transaction } from 'kafkajs';
import { keyText, offsetValue, spanName, writeBaseAttributes } from './internal/attributes.js';
import { tracingFailed } from './internal/debug.js';
import { headersWithContext } from './internal/headers.js';

/** Options of `traceProducer`. */
export interface TraceProducerOptions {
  /**
   * Record each message's key as `messaging.kafka.message.key` (string keys, and Buffer keys that are
   * valid UTF-8). Default true; turn it off when keys carry personal data.
   */
  captureKey?: boolean;
  /** Propagation formats written into the headers; default the ones set with `configure()` in @cyb/core. */
  formats?: readonly PropagationFormat[];
}

interface ProducerSettings {
  captureKey: boolean;
  formats: ReturnType<typeof propagationFormats> | undefined;
}

/** The part of a producer (and of a transaction) that sends. */
type Sender = Pick<Producer, 'send' | 'sendBatch'>;

/** One message's span and what is known about where it went. */
interface Sent {
  span: CybSpan;
  topic: string;
  /** The partition the application chose, if it chose one. */
  partition: number | undefined;
}

const TRACED = Symbol.for('cyb.kafka.traced');

function isTraced(value: object): boolean {
  return (value as { [TRACED]?: unknown })[TRACED] === true;
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    value !== null &&
    (typeof value === 'object' || typeof value === 'function') &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}

/**
 * Copies `messages` with the trace context of a new PRODUCER span each in its headers, and collects the
 * spans in `sent`. The caller's message and header objects are left as they were.
 */
function traceMessages(topic: string, messages: Message[], settings: ProducerSettings, sent: Sent[]): Message[] {
  const out = new Array<Message>(messages.length);
  for (let i = 0; i < messages.length; i++) {
    const message = messages[i]!;
    const span = startSpan(spanName('send', topic), { kind: 'producer' });
    const attributes = span.attributes;
    writeBaseAttributes(attributes, topic, 'send');
    const partition = typeof message.partition === 'number' ? message.partition : undefined;
    if (partition !== undefined) attributes['messaging.destination.partition.id'] = String(partition);
    if (settings.captureKey) {
      const key = keyText(message.key);
      if (key !== undefined) attributes['messaging.kafka.message.key'] = key;
    }
    if (message.value === null) attributes['messaging.kafka.message.tombstone'] = true;
    sent.push({ span, topic, partition });
    const headers = headersWithContext(
      message.headers,
      settings.formats === undefined ? { context: contextWithSpan(span) } : { context: contextWithSpan(span), formats: settings.formats },
    );
    if (headers === message.headers) out[i] = message;
    else {
      const copy = shallowCopy(message);
      copy.headers = headers;
      out[i] = copy;
    }
  }
  return out;
}

function isMessageList(value: unknown): value is Message[] {
  if (!Array.isArray(value)) return false;
  for (const m of value) if (m === null || typeof m !== 'object') return false;
  return true;
}

/**
 * Adds partition and offset to the spans where the broker's answer pins them down: kafkajs reports one
 * entry per partition written, not per message, so a message's partition is known when the application
 * chose it or when all of a topic's messages went to one partition; offsets then follow from the
 * partition's base offset and the order of the messages.
 */
function annotate(sent: readonly Sent[], results: unknown): void {
  if (!Array.isArray(results) || results.length === 0) return;
  const byTopic = new Map<string, RecordMetadata[]>();
  for (const r of results as RecordMetadata[]) {
    if (r === null || typeof r !== 'object') continue;
    const list = byTopic.get(r.topicName);
    if (list) list.push(r);
    else byTopic.set(r.topicName, [r]);
  }
  const guessed = new Set<string>();
  for (const s of sent) if (s.partition === undefined) guessed.add(s.topic);
  const counters = new Map<string, number>();
  for (const s of sent) {
    const written = byTopic.get(s.topic);
    if (written === undefined) continue;
    let partition = s.partition;
    if (partition === undefined && written.length === 1) partition = written[0]!.partition;
    if (partition === undefined) continue;
    if (s.partition === undefined) s.span.setAttribute('messaging.destination.partition.id', String(partition));
    // Offsets only when every message of the topic has a known partition; otherwise the count per
    // partition, and so every offset after the first unknown message, would be guesswork.
    if (written.length > 1 && guessed.has(s.topic)) continue;
    const entry = written.find((r) => r.partition === partition);
    const base = entry?.baseOffset;
    if (typeof base !== 'string' || base === '-1') continue;
    const counterKey = `${s.topic}\u0000${partition}`;
    const index = counters.get(counterKey) ?? 0;
    counters.set(counterKey, index + 1);
    const baseNumber = Number(base);
    if (Number.isSafeInteger(baseNumber + index)) s.span.setAttribute('messaging.kafka.offset', baseNumber + index);
    else s.span.setAttribute('messaging.kafka.offset', offsetValue((BigInt(base) + BigInt(index)).toString()));
  }
}

function endAll(sent: readonly Sent[], error?: { value: unknown }): void {
  for (const s of sent) {
    try {
      if (error) s.span.fail(error.value);
      s.span.end();
    } catch (err) {
      tracingFailed('end send span', err);
    }
  }
}

/**
 * Makes the kafkajs call (already given the traced copy of the request) and ends the spans when it
 * settles, passing the result or the error through untouched.
 */
function sendTraced<T>(sent: Sent[], call: () => T): T {
  let result: T;
  try {
    result = call();
  } catch (err) {
    endAll(sent, { value: err });
    throw err;
  }
  if (!isThenable(result)) {
    endAll(sent);
    return result;
  }
  // Observe the settlement beside the caller: the caller keeps the very promise kafkajs returned, so the
  // results array and the error object reach it unchanged.
  result.then(
    (results) => {
      try {
        annotate(sent, results);
      } catch (err) {
        tracingFailed('annotate send spans', err);
      }
      endAll(sent);
    },
    (err: unknown) => endAll(sent, { value: err }),
  );
  return result;
}

function tracedSend(target: Sender, settings: ProducerSettings): Sender['send'] {
  return function send(record: ProducerRecord): Promise<RecordMetadata[]> {
    const original = target.send;
    const sent: Sent[] = [];
    let traced: ProducerRecord;
    try {
      if (record === null || typeof record !== 'object' || !isMessageList(record.messages)) {
        // Malformed: kafkajs reports it in its own words.
        return original.call(target, record);
      }
      traced = { ...record, messages: traceMessages(String(record.topic), record.messages, settings, sent) };
    } catch (err) {
      tracingFailed('send', err);
      endAll(sent);
      return original.call(target, record);
    }
    return sendTraced(sent, () => original.call(target, traced));
  };
}

function tracedSendBatch(target: Sender, settings: ProducerSettings): Sender['sendBatch'] {
  return function sendBatch(batch: ProducerBatch): Promise<RecordMetadata[]> {
    const original = target.sendBatch;
    const sent: Sent[] = [];
    let traced: ProducerBatch;
    try {
      const topicMessages = batch?.topicMessages;
      if (batch === null || typeof batch !== 'object' || !Array.isArray(topicMessages)) return original.call(target, batch);
      for (const tm of topicMessages) {
        if (tm === null || typeof tm !== 'object' || !isMessageList(tm.messages)) return original.call(target, batch);
      }
      traced = {
        ...batch,
        topicMessages: topicMessages.map((tm) => ({ ...tm, messages: traceMessages(String(tm.topic), tm.messages, settings, sent) })),
      };
    } catch (err) {
      tracingFailed('sendBatch', err);
      endAll(sent);
      return original.call(target, batch);
    }
    return sendTraced(sent, () => original.call(target, traced));
  };
}

/** A view of `target` whose `send` and `sendBatch` are traced; everything else is the target's own. */
function traceSender<S extends Sender>(target: S, settings: ProducerSettings, extra?: Partial<Record<PropertyKey, unknown>>): S {
  const overrides: Record<PropertyKey, unknown> = {
    send: tracedSend(target, settings),
    sendBatch: tracedSendBatch(target, settings),
    [TRACED]: true,
    ...extra,
  };
  return new Proxy(target, {
    get(t, property) {
      return Object.prototype.hasOwnProperty.call(overrides, property) ? overrides[property] : Reflect.get(t, property, t);
    },
  });
}

/**
 * Wraps a kafkajs producer so that every message sent carries the active trace context in its headers,
 * with a PRODUCER span `send <topic>` per message. The returned producer has the kafkajs API; `send`,
 * `sendBatch` and the `send`/`sendBatch` of `transaction()` are traced, the rest is the producer's own.
 * The caller's records, messages and headers objects are never modified; results and errors are
 * returned unchanged.
 *
 * @example
 * const producer = traceProducer(kafka.producer());
 * await producer.connect();
 * await producer.send({ topic: 'orders', messages: [{ key: order.id, value: JSON.stringify(order) }] });
 */
export function traceProducer<P extends Producer>(producer: P, options: TraceProducerOptions = {}): P {
  if (producer === null || typeof producer !== 'object' || typeof producer.send !== 'function') {
    throw new TypeError('traceProducer expects a kafkajs producer');
  }
  const { captureKey = true, formats } = options;
  const settings: ProducerSettings = {
    captureKey,
    formats: formats === undefined ? undefined : propagationFormats(formats, 'formats'),
  };
  if (isTraced(producer)) return producer;
  return traceSender(producer, settings, {
    transaction: function transaction(): Promise<Transaction> {
      const pending = producer.transaction();
      if (!isThenable(pending)) return pending;
      // A rejection passes through `then` with the same error object.
      return pending.then((tx) => {
        if (tx === null || typeof tx !== 'object' || typeof tx.send !== 'function') return tx;
        try {
          return traceSender(tx, settings);
        } catch (err) {
          tracingFailed('transaction', err);
          return tx;
        }
      });
    },
  });
}
