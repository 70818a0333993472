// Hostile Kafka headers (strings, arbitrary bytes, repeated keys, prototype keys, huge values,
// thousands of tracestate members) sent with plain kafkajs to a topic read by a traced and an
// untraced consumer group. Both must see the same messages; the traced one must not throw, must never
// adopt a parent the headers did not name, and nothing may reach Object.prototype.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { Kafka, logLevel, type Consumer, type IHeaders, type KafkaMessage, type Producer } from 'kafkajs';
import { Collector, inject, propagationStats, type SpanRecord } from '@cyb/core';
import { kafkaStats, traceConsumer } from '@cyb/kafka';
import { assertPrototypeClean, plainData, prototypeSnapshot, uniqueName, waitUntil } from './helpers.js';
import { PROTO_KEYS, hex, hostileKey, hostileText, manyMembers, parseTraceparent, validTraceparent } from './hostile.js';

const BROKERS = process.env.KAFKA_BROKERS;
const SAMPLES = 150;

/** A header value as kafkajs takes it: text, bytes, or several of them (a repeated key). */
const headerValue: fc.Arbitrary<string | Buffer | (string | Buffer)[]> = fc.oneof(
  { arbitrary: hostileText, weight: 5 },
  { arbitrary: fc.uint8Array({ maxLength: 100 }).map((b) => Buffer.from(b)), weight: 3 },
  { arbitrary: fc.array(fc.oneof(fc.string({ maxLength: 30 }), fc.uint8Array({ maxLength: 20 }).map((b) => Buffer.from(b))), { minLength: 1, maxLength: 5 }), weight: 1 },
);

const headersArb: fc.Arbitrary<IHeaders> = fc.tuple(
  fc.option(fc.constant(null).map(() => validTraceparent()), { freq: 3 }),
  fc.array(fc.tuple(fc.oneof(hostileKey, fc.constantFrom(...PROTO_KEYS)), headerValue), { maxLength: 8 }),
).map(([parent, pairs]) => {
  const headers: IHeaders = {};
  if (parent !== null) headers.traceparent = parent;
  for (const [k, v] of pairs) Object.defineProperty(headers, k, { value: v, enumerable: true, writable: true, configurable: true });
  return headers;
});

describe('hostile Kafka headers from a plain producer, into a traced and an untraced consumer group', () => {
  const collector = new Collector({ maxTraces: 5000, maxSpansPerTrace: 5 });
  const topic = uniqueName('kafka-hostile');
  const received = { traced: new Map<string, KafkaMessage>(), plain: new Map<string, KafkaMessage>() };
  const contexts = new Map<string, Record<string, string>>();
  const proto = prototypeSnapshot();
  let producer: Producer;
  let consumers: Consumer[] = [];

  before(async () => {
    if (!BROKERS) throw new Error('KAFKA_BROKERS is not set: run through `npm test`, or eval "$(tools/services.sh up)"');
    collector.start();
    const kafka = new Kafka({ clientId: 'cyb-reliability-hostile', brokers: BROKERS.split(','), logLevel: logLevel.NOTHING });
    producer = kafka.producer({ allowAutoTopicCreation: true });
    await producer.connect();
    // The topic exists before the groups join, so both start from its first message.
    await producer.send({ topic, messages: [{ key: 'warm-up', value: 'x' }] });
    const make = (traced: boolean): Consumer => {
      const consumer = kafka.consumer({ groupId: uniqueName(traced ? 'hostile-traced' : 'hostile-plain'), sessionTimeout: 6000, heartbeatInterval: 500, maxWaitTimeInMs: 100 });
      return traced ? traceConsumer(consumer) : consumer;
    };
    consumers = [make(true), make(false)];
    await Promise.all(consumers.map(async (consumer, i) => {
      const into = i === 0 ? received.traced : received.plain;
      await consumer.connect();
      await consumer.subscribe({ topic, fromBeginning: true });
      await consumer.run({
        eachMessage: async ({ message }) => {
          const key = String(message.key);
          if (i === 0) {
            const carrier: Record<string, string> = {};
            inject(carrier);
            contexts.set(key, carrier);
          }
          into.set(key, message);
        },
      });
    }));
    await waitUntil(() => received.traced.has('warm-up') && received.plain.has('warm-up'), 'both groups to read the topic', 20_000);
  });

  after(async () => {
    collector.stop();
    for (const c of consumers) await c.disconnect();
    await producer?.disconnect();
  });

  function spanOf(key: string): SpanRecord {
    const spans = collector.traces().flatMap((t) => t.spans).filter((s) => s.kind === 'consumer' && s.attributes['messaging.kafka.message.key'] === key);
    assert.equal(spans.length, 1, `one consumer span for ${key}`);
    return spans[0]!;
  }

  it('any headers: the same message for both groups, no stranger adopted, no pollution', async (t) => {
    const seed = Date.now() % 1_000_000;
    const samples = fc.sample(fc.tuple(headersArb, fc.uint8Array({ maxLength: 200 })), { numRuns: SAMPLES, seed });
    const failuresBefore = kafkaStats().tracingFailures;
    // One message per sample, in a few requests: a round trip per sample would take minutes.
    const messages = samples.map(([headers, value], i) => ({ key: `h${i}`, value: Buffer.from(value), headers }));
    for (let i = 0; i < messages.length; i += 50) await producer.send({ topic, messages: messages.slice(i, i + 50) });
    await waitUntil(() => messages.every((m) => received.traced.has(m.key) && received.plain.has(m.key)), 'every sample at both groups', 20_000, 2);

    let continued = 0;
    for (const [i, [headers]] of samples.entries()) {
      const key = `h${i}`;
      const where = `sample ${i} of seed ${seed}`;
      const traced = received.traced.get(key)!;
      const plain = received.plain.get(key)!;
      assert.deepEqual(traced.value, plain.value, where);
      assert.deepEqual(plainData(traced.headers), plainData(plain.headers), where);
      assert.equal(traced.offset, plain.offset, where);
      const s = spanOf(key);
      if (s.parentSpanId !== undefined) {
        continued++;
        const text = JSON.stringify(plainData(headers)) + Object.values(headers).flat().map((v) => Buffer.isBuffer(v) ? v.toString('latin1') : String(v)).join('');
        assert.ok(text.includes(s.parentSpanId), `${where}: parent ${s.parentSpanId} was named by the headers`);
      }
      const sent = typeof headers.traceparent === 'string' ? parseTraceparent(headers.traceparent) : undefined;
      if (sent) {
        assert.equal(s.traceId, sent.traceId, `${where}: a well-formed traceparent is continued`);
        assert.equal(s.parentSpanId, sent.spanId, where);
      }
    }
    assertPrototypeClean(proto);
    assert.equal(kafkaStats().tracingFailures, failuresBefore, 'hostile input is input, not a tracing failure');
    t.diagnostic(`seed ${seed}: ${SAMPLES} messages, ${continued} continuing a sent parent`);
    assert.ok(continued > 0);
  });

  it('10,000 tracestate members: the parent kept, the tracestate dropped and counted', async () => {
    const before = propagationStats();
    const traceId = hex(16);
    const spanId = hex(8);
    await producer.send({ topic, messages: [{ key: 'members', value: 'x', headers: { traceparent: validTraceparent(traceId, spanId), tracestate: manyMembers(10_000) } }] });
    await waitUntil(() => received.traced.has('members'), 'the message', 10_000, 2);
    const s = spanOf('members');
    assert.equal(s.traceId, traceId);
    assert.equal(s.parentSpanId, spanId);
    assert.equal(contexts.get('members')!.tracestate, undefined, 'no tracestate passed on');
    assert.equal(propagationStats().invalidTracestate, before.invalidTracestate + 1);
  });
});
