import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Collector, contextWithSpan, currentSpan, span, startSpan, withContext, type SpanRecord } from '@cyb/core';
import type { Consumer, LogEntry, Producer } from 'kafkajs';
import { traceConsumer, traceProducer } from '../src/index.js';
import { allSpans, consumerConfig, headerText, kafkaClient, uniqueName, waitFor } from './helpers.js';

interface Seen {
  id: string;
  /** The active span's ids when the handler started, after a timer, and of a span opened inside it. */
  activeSpanId: string | undefined;
  afterTimerSpanId: string | undefined;
  childParentId: string | undefined;
}

describe('traceConsumer: eachMessage', () => {
  const logs: LogEntry[] = [];
  const kafka = kafkaClient('cyb-kafka-each-message-test', logs);
  const collector = new Collector({ maxSpansPerTrace: 200 }).start();
  const topic = uniqueName('each');
  const group = uniqueName('group');
  const boom = new Error('boom');
  let raw: Producer;
  let consumer: Consumer;
  const seen: Seen[] = [];
  let failedOnce = false;
  /** The PRODUCER spans, by message id. */
  const producerSpan = new Map<string, SpanRecord>();

  before(async () => {
    raw = kafka.producer();
    await raw.connect();
    const producer = traceProducer(raw);
    const b3Only = traceProducer(raw, { formats: ['b3'] });
    const sendIn = async (label: string, p: Producer, id: string, partition: number, key: string): Promise<void> => {
      const parent = startSpan(label);
      await withContext(contextWithSpan(parent), () => p.send({ topic, messages: [{ key, value: id, partition, headers: { id } }] }));
      parent.end();
      producerSpan.set(id, allSpans(collector).find((s) => s.parentSpanId === parent.spanId)!);
    };
    await sendIn('request', producer, 'traced', 0, 'k1');
    await raw.send({ topic, messages: [{ key: 'k2', value: 'plain', partition: 1, headers: { id: 'plain' } }] });
    await raw.send({
      topic,
      messages: [
        {
          value: 'hostile',
          partition: 2,
          headers: {
            id: 'hostile',
            traceparent: ['00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', 'ff-garbage'],
            b3: 'not-a-b3-value',
            'x-b3-traceid': 'zz',
            tracestate: 'x'.repeat(20_000),
          },
        },
      ],
    });
    await sendIn('job', producer, 'failing', 3, 'k4');
    await sendIn('legacy', b3Only, 'b3', 0, 'k5');

    consumer = traceConsumer(kafka.consumer(consumerConfig(group)));
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ message }) => {
        const id = headerText(message.headers?.id)!;
        const activeSpanId = currentSpan()?.spanContext().spanId;
        if (id === 'failing' && !failedOnce) {
          failedOnce = true;
          throw boom;
        }
        await new Promise((resolve) => setTimeout(resolve, 5));
        const afterTimerSpanId = currentSpan()?.spanContext().spanId;
        const child = span('work', {}, () => currentSpan() as unknown as SpanRecord);
        seen.push({ id, activeSpanId, afterTimerSpanId, childParentId: child.parentSpanId });
      },
    });
    await waitFor('every message handled', () => (seen.length >= 5 ? true : undefined));
  });

  after(async () => {
    collector.stop();
    await consumer?.disconnect();
    await raw?.disconnect();
  });

  const processSpans = (): SpanRecord[] => allSpans(collector).filter((s) => s.name === `process ${topic}`);
  const processSpanOf = (offsetAndPartition: [number, string]): SpanRecord[] =>
    processSpans().filter(
      (s) => s.attributes['messaging.kafka.offset'] === offsetAndPartition[0] && s.attributes['messaging.destination.partition.id'] === offsetAndPartition[1],
    );

  it('runs the handler in a CONSUMER span that is the child of the message’s producer span', () => {
    const producer = producerSpan.get('traced')!;
    const [processed] = processSpanOf([0, '0']);
    assert.ok(processed);
    assert.equal(processed.kind, 'consumer');
    assert.equal(processed.traceId, producer.traceId);
    assert.equal(processed.parentSpanId, producer.spanId);
    assert.deepEqual(processed.attributes, {
      'messaging.system': 'kafka',
      'messaging.destination.name': topic,
      'messaging.operation.type': 'process',
      'messaging.operation.name': 'process',
      'messaging.destination.partition.id': '0',
      'messaging.kafka.offset': 0,
      'messaging.kafka.message.key': 'k1',
      'messaging.consumer.group.name': group,
    });
    assert.equal(processed.status.code, 'unset');
  });

  it('keeps that span active for the handler’s whole async work', () => {
    const [processed] = processSpanOf([0, '0']);
    const handled = seen.find((s) => s.id === 'traced')!;
    assert.equal(handled.activeSpanId, processed!.spanId);
    assert.equal(handled.afterTimerSpanId, processed!.spanId);
    assert.equal(handled.childParentId, processed!.spanId);
    assert.equal(currentSpan(), undefined, 'nothing leaks into the caller');
  });

  it('continues a trace that arrived as B3 only', () => {
    const producer = producerSpan.get('b3')!;
    const [processed] = processSpanOf([1, '0']);
    assert.equal(processed?.parentSpanId, producer.spanId);
    assert.equal(processed?.traceId, producer.traceId);
  });

  it('starts a new trace for a message without trace headers', () => {
    const [processed] = processSpanOf([0, '1']);
    assert.ok(processed);
    assert.equal(processed.parentSpanId, undefined);
    const producerTraces = new Set([...producerSpan.values()].map((s) => s.traceId));
    assert.equal(producerTraces.has(processed.traceId), false);
    assert.equal(seen.find((s) => s.id === 'plain')?.activeSpanId, processed.spanId);
  });

  it('starts a new trace for malformed, repeated and oversized trace headers, without throwing', () => {
    const [processed] = processSpanOf([0, '2']);
    assert.ok(processed);
    assert.equal(processed.parentSpanId, undefined);
    assert.notEqual(processed.traceId, '0af7651916cd43dd8448eb211c80319c');
    assert.ok(seen.some((s) => s.id === 'hostile'), 'the handler ran');
  });

  it('setup: a non-consumer or a bad option is refused at once; tracing twice changes nothing', () => {
    assert.throws(() => traceConsumer({} as Consumer), TypeError);
    assert.throws(() => traceConsumer(consumer, { maxBatchLinks: -1 }), RangeError);
    assert.equal(traceConsumer(consumer), consumer);
  });

  it('records a handler’s error on the span and hands kafkajs the very same error', () => {
    const producer = producerSpan.get('failing')!;
    const attempts = processSpanOf([0, '3']);
    assert.equal(attempts.length, 2, 'kafkajs delivered the message again after the failure');
    const [first, second] = attempts;
    for (const s of attempts) assert.equal(s.parentSpanId, producer.spanId);
    assert.deepEqual(first!.status, { code: 'error', message: 'boom' });
    assert.equal(first!.events[0]?.name, 'exception');
    assert.equal(first!.events[0]?.attributes?.['exception.message'], 'boom');
    assert.equal(second!.status.code, 'unset');
    const logged = logs.find((e) => (e.log as { error?: unknown }).error !== undefined);
    assert.equal((logged?.log as { error?: unknown } | undefined)?.error, boom);
  });
});
