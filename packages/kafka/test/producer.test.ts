import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Collector, contextWithSpan, startSpan, withContext, type SpanRecord } from '@cyb/core';
import type { Consumer, KafkaMessage, Message, Producer, Transaction } from 'kafkajs';
import { traceProducer } from '../src/index.js';
import { allSpans, consumerConfig, headerText, kafkaClient, parseTraceparent, uniqueName, waitFor } from './helpers.js';

/** A deep copy that keeps Buffers as Buffers (structuredClone would turn them into Uint8Arrays). */
function snapshot<T>(value: T): T {
  if (Buffer.isBuffer(value)) return Buffer.from(value) as T;
  if (Array.isArray(value)) return value.map(snapshot) as T;
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, snapshot(v)])) as T;
  }
  return value;
}

/** Freezes a record and everything in it, so that any write by the wrapper throws. */
function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Buffer.isBuffer(value)) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

describe('traceProducer', () => {
  const kafka = kafkaClient('cyb-kafka-producer-test');
  const collector = new Collector({ maxSpansPerTrace: 200 }).start();
  const topicA = uniqueName('send');
  const topicB = uniqueName('batch');
  const topicTx = uniqueName('tx');
  let raw: Producer;
  let producer: Producer;
  let reader: Consumer;
  /** Every message read back from the broker, by topic, in arrival order. */
  const received = new Map<string, { partition: number; message: KafkaMessage }[]>();

  before(async () => {
    raw = kafka.producer();
    await raw.connect();
    producer = traceProducer(raw);
  });

  after(async () => {
    collector.stop();
    await reader?.disconnect();
    await raw?.disconnect();
  });

  /** Reads the topics back with a plain, untraced kafkajs consumer: what is on the wire. */
  async function readBack(): Promise<void> {
    reader = kafka.consumer(consumerConfig(uniqueName('reader')));
    await reader.connect();
    await reader.subscribe({ topics: [topicA, topicB, topicTx], fromBeginning: true });
    await reader.run({
      eachMessage: async ({ topic, partition, message }) => {
        const list = received.get(topic) ?? [];
        list.push({ partition, message });
        received.set(topic, list);
      },
    });
  }

  function readMessage(topic: string, id: string): { partition: number; message: KafkaMessage } | undefined {
    return received.get(topic)?.find((r) => headerText(r.message.headers?.id) === id);
  }

  const sendSpans = (topic: string): SpanRecord[] => allSpans(collector).filter((s) => s.name === `send ${topic}`);

  it('send: a PRODUCER span per message, child of the active span, context in every message header', async () => {
    const parent = startSpan('request');
    const stale = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    const messages: Message[] = [
      { key: 'k-1', value: 'one', partition: 0, headers: { id: 'a1', text: 'plain', bin: Buffer.from([0xca, 0xfe]) } },
      { key: Buffer.from('k-2'), value: 'two', partition: 1, headers: { id: 'a2', list: ['x', Buffer.from('y')] } },
      { key: null, value: null, partition: 1, headers: { id: 'a3', traceparent: stale, tracestate: 'old=1', 'X-B3-TraceId': 'abc' } },
    ];
    const record = deepFreeze({ topic: topicA, messages });
    const before = snapshot(record);

    const results = await withContext(contextWithSpan(parent), () => producer.send(record));
    parent.end();

    assert.deepEqual(record, before, 'the caller’s record, messages and headers are untouched');
    assert.ok(Array.isArray(results));
    assert.deepEqual(results.map((r) => [r.topicName, r.partition, r.errorCode]).sort(), [
      [topicA, 0, 0],
      [topicA, 1, 0],
    ]);

    const spans = sendSpans(topicA);
    assert.equal(spans.length, 3);
    for (const s of spans) {
      assert.equal(s.kind, 'producer');
      assert.equal(s.traceId, parent.traceId);
      assert.equal(s.parentSpanId, parent.spanId);
      assert.equal(s.attributes['messaging.system'], 'kafka');
      assert.equal(s.attributes['messaging.destination.name'], topicA);
      assert.equal(s.attributes['messaging.operation.type'], 'send');
    }
    assert.deepEqual(
      spans.map((s) => [s.attributes['messaging.kafka.message.key'], s.attributes['messaging.destination.partition.id'], s.attributes['messaging.kafka.offset']]),
      [
        ['k-1', '0', 0],
        ['k-2', '1', 0],
        [undefined, '1', 1],
      ],
    );
    assert.equal(spans[2]!.attributes['messaging.kafka.message.tombstone'], true);
  });

  it('send: a single message without a chosen partition gets the partition the broker reported', async () => {
    const results = await producer.send({ topic: topicA, messages: [{ key: 'solo', value: 'v', headers: { id: 'a4' } }] });
    const span = sendSpans(topicA).find((s) => s.attributes['messaging.kafka.message.key'] === 'solo');
    assert.ok(span);
    assert.equal(span.parentSpanId, undefined, 'no active span: the producer span starts a trace');
    assert.equal(span.attributes['messaging.destination.partition.id'], String(results[0]!.partition));
    assert.equal(span.attributes['messaging.kafka.offset'], Number(results[0]!.baseOffset));
  });

  it('sendBatch: spans per message across topics, the caller’s batch untouched', async () => {
    const batch = deepFreeze({
      topicMessages: [
        { topic: topicB, messages: [{ value: 'b1', headers: { id: 'b1' } }, { value: 'b2', headers: { id: 'b2' } }] },
        { topic: topicA, messages: [{ value: 'b3', partition: 3, headers: { id: 'b3' } }] },
      ],
    });
    const before = snapshot(batch);
    const parent = startSpan('batch job');
    const results = await withContext(contextWithSpan(parent), () => producer.sendBatch(batch));
    parent.end();
    assert.deepEqual(batch, before);
    assert.ok(results.some((r) => r.topicName === topicB) && results.some((r) => r.topicName === topicA));
    const spans = [...sendSpans(topicB), ...sendSpans(topicA).filter((s) => s.parentSpanId === parent.spanId)];
    assert.equal(spans.length, 3);
    for (const s of spans) assert.equal(s.parentSpanId, parent.spanId);
  });

  it('transaction(): the transaction’s send and sendBatch are traced, its errors come through unchanged', async () => {
    // The mock broker cannot take transactional writes (an idempotent producer cannot connect to it), but
    // kafkajs begins a transaction without a connection, so the real Transaction object is there to wrap.
    const tid = uniqueName('tid');
    const plain = kafka.producer({ transactionalId: tid, idempotent: true, maxInFlightRequests: 1 });
    const traced = traceProducer(kafka.producer({ transactionalId: `${tid}-t`, idempotent: true, maxInFlightRequests: 1 }));
    const plainTx = await plain.transaction();
    const tracedTx = await traced.transaction();
    assert.deepEqual(Object.keys(tracedTx).sort(), Object.keys(plainTx).sort());
    assert.equal(tracedTx.isActive(), true);

    const failure = (p: Promise<unknown>): Promise<unknown> => p.then(() => undefined, (e: unknown) => e);
    // A second transaction while one is open: kafkajs rejects, the wrapper passes it on.
    const [plainAgain, tracedAgain] = [await failure(plain.transaction()), await failure(traced.transaction())];
    assert.ok(plainAgain instanceof Error && tracedAgain instanceof Error);
    assert.equal(tracedAgain.message, plainAgain.message);

    const parent = startSpan('tx job');
    const tracedSend = await withContext(contextWithSpan(parent), () =>
      failure(tracedTx.send({ topic: topicTx, messages: [{ key: 'tx-send', value: 'x' }] })),
    );
    const tracedBatch = await withContext(contextWithSpan(parent), () =>
      failure(tracedTx.sendBatch({ topicMessages: [{ topic: topicTx, messages: [{ key: 'tx-batch', value: 'x' }] }] })),
    );
    parent.end();
    const plainSend = await failure(plainTx.send({ topic: topicTx, messages: [{ value: 'x' }] }));
    assert.ok(plainSend instanceof Error && tracedSend instanceof Error && tracedBatch instanceof Error);
    assert.equal(tracedSend.message, plainSend.message);
    assert.equal(tracedBatch.message, plainSend.message);
    const spans = sendSpans(topicTx).filter((s) => s.parentSpanId === parent.spanId);
    assert.deepEqual(spans.map((s) => [s.attributes['messaging.kafka.message.key'], s.status.code]), [
      ['tx-send', 'error'],
      ['tx-batch', 'error'],
    ]);

    await tracedTx.abort();
    await plainTx.abort();
    assert.equal(tracedTx.isActive(), false, 'the rest of the transaction is its own');
    const ended = await failure(tracedTx.send({ topic: topicTx, messages: [{ value: 'x' }] }));
    const plainEnded = await failure(plainTx.send({ topic: topicTx, messages: [{ value: 'x' }] }));
    assert.ok(ended instanceof Error && plainEnded instanceof Error);
    assert.equal(ended.message, plainEnded.message);
    // Beginning the transactions opened connections to the coordinator.
    await Promise.all([plain.disconnect(), traced.disconnect()]);
  });

  it('transaction(): what a traced transaction sends carries the context on the wire', async () => {
    // Committed transactional writes cannot happen on the test broker; behind kafkajs's Transaction
    // shape here are the connected producer's own send and sendBatch, so the messages reach the broker.
    let committed = false;
    const transactional = {
      ...raw,
      transaction: async (): Promise<Transaction> => ({
        send: raw.send,
        sendBatch: raw.sendBatch,
        sendOffsets: async () => {},
        commit: async () => {
          committed = true;
        },
        abort: async () => {},
        isActive: () => !committed,
      }),
    } satisfies Producer;
    const traced = traceProducer(transactional);
    const tx = await traced.transaction();
    const parent = startSpan('tx job');
    await withContext(contextWithSpan(parent), async () => {
      await tx.send({ topic: topicTx, messages: [{ value: 't1', headers: { id: 't1' } }] });
      await tx.sendBatch({ topicMessages: [{ topic: topicTx, messages: [{ value: 't2', headers: { id: 't2' } }] }] });
    });
    await tx.commit();
    parent.end();
    assert.equal(committed, true);
    assert.equal(tx.isActive(), false, 'the rest of the transaction is its own');
    const spans = sendSpans(topicTx).filter((s) => s.parentSpanId === parent.spanId);
    assert.equal(spans.length, 2);
  });

  it('errors: a failed send rejects with kafkajs’s error and records it on the spans', async () => {
    const closed = kafka.producer();
    const plainError = await closed.send({ topic: topicA, messages: [{ value: 'x' }] }).then(() => undefined, (e: unknown) => e);
    const tracedError = await traceProducer(closed)
      .send({ topic: topicA, messages: [{ key: 'never-sent', value: 'x' }] })
      .then(() => undefined, (e: unknown) => e);
    assert.ok(plainError instanceof Error && tracedError instanceof Error);
    assert.equal(tracedError.constructor, plainError.constructor);
    assert.equal(tracedError.message, plainError.message);
    const span = sendSpans(topicA).find((s) => s.attributes['messaging.kafka.message.key'] === 'never-sent');
    assert.ok(span);
    assert.equal(span.status.code, 'error');
    assert.equal(span.status.message, plainError.message);
    assert.equal(span.events[0]?.name, 'exception');
  });

  it('malformed requests reach kafkajs as given, and fail there', async () => {
    const bad = { topic: topicA, messages: 'not a list' } as unknown as Parameters<Producer['send']>[0];
    const plainError = await raw.send(bad).then(() => undefined, (e: unknown) => e);
    const tracedError = await producer.send(bad).then(() => undefined, (e: unknown) => e);
    assert.ok(plainError instanceof Error && tracedError instanceof Error);
    assert.equal(tracedError.message, plainError.message);
  });

  it('setup: a non-producer is refused at once; tracing twice changes nothing', () => {
    assert.throws(() => traceProducer({} as Producer), TypeError);
    assert.throws(() => traceProducer(null as unknown as Producer), TypeError);
    assert.equal(traceProducer(producer), producer);
    assert.equal(producer.events, raw.events, 'the rest is the producer’s own');
  });

  it('on the wire: each message names its own span, and keeps the application’s headers', async () => {
    await readBack();
    await waitFor('all messages read back', () =>
      ['a1', 'a2', 'a3', 'a4'].every((id) => readMessage(topicA, id)) &&
      ['b1', 'b2'].every((id) => readMessage(topicB, id)) &&
      ['t1', 't2'].every((id) => readMessage(topicTx, id))
        ? true
        : undefined,
    );
    const spanIds = new Set(allSpans(collector).filter((s) => s.kind === 'producer').map((s) => s.spanId));
    for (const [topic, ids] of [
      [topicA, ['a1', 'a2', 'a3', 'a4', 'b3']],
      [topicB, ['b1', 'b2']],
      [topicTx, ['t1', 't2']],
    ] as const) {
      for (const id of ids) {
        const { message } = readMessage(topic, id)!;
        const tp = parseTraceparent(headerText(message.headers?.traceparent));
        assert.ok(tp, `${id} carries a traceparent`);
        assert.ok(spanIds.has(tp.spanId), `${id}'s traceparent names its producer span`);
        const b3 = headerText(message.headers?.b3);
        assert.ok(b3?.includes(tp.spanId), `${id} carries the same context as b3`);
      }
    }
    const a1 = readMessage(topicA, 'a1')!;
    assert.equal(a1.partition, 0);
    assert.equal(headerText(a1.message.headers?.text), 'plain');
    assert.deepEqual(a1.message.headers?.bin, Buffer.from([0xca, 0xfe]));
    const a2 = readMessage(topicA, 'a2')!.message;
    assert.deepEqual(a2.headers?.list, [Buffer.from('x'), Buffer.from('y')]);
    const a3 = readMessage(topicA, 'a3')!.message;
    assert.notEqual(parseTraceparent(headerText(a3.headers?.traceparent))?.traceId, '0af7651916cd43dd8448eb211c80319c', 'the stale parent was replaced');
    assert.equal(a3.headers?.tracestate, undefined, 'and its tracestate dropped');
    assert.equal(a3.headers?.['X-B3-TraceId'], undefined);
    assert.equal(a3.key, null);
    assert.equal(a3.value, null);
  });
});
