import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Collector, contextWithSpan, currentSpan, inject, span, startSpan, withContext, type SpanRecord } from '@cyb/core';
import type { Consumer, EachBatchPayload, Producer } from 'kafkajs';
import { traceBatchMessage, traceConsumer, traceProducer } from '../src/index.js';
import { allSpans, consumerConfig, headerText, kafkaClient, uniqueName, waitFor } from './helpers.js';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('traceConsumer: eachBatch', () => {
  const kafka = kafkaClient('cyb-kafka-each-batch-test');
  const collector = new Collector({ maxSpansPerTrace: 200 }).start();
  const topicLoop = uniqueName('loop');
  const topicHelper = uniqueName('helper');
  const topicFail = uniqueName('fail');
  const boom = new Error('boom in batch');
  let raw: Producer;
  const consumers: Consumer[] = [];
  /** PRODUCER spans by message id. */
  const producerSpan = new Map<string, SpanRecord>();
  /** What the handlers saw: the active span id at the start of each batch, and its size. */
  const loopBatches: { activeSpanId: string | undefined; size: number }[] = [];
  const helperSeen = new Map<string, { activeSpanId: string | undefined; workParentId: string | undefined }>();
  const failDeliveries: string[][] = [];

  // The test broker answers a fetch with one produce request's worth of messages, so whatever one
  // batch must hold goes out in one request.

  /** One traced send of one message per id (key = id), each with its own PRODUCER span. */
  async function sendTraced(producer: Producer, topic: string, ids: string[]): Promise<void> {
    const root = startSpan(`job ${topic}`);
    await withContext(contextWithSpan(root), () =>
      producer.send({ topic, messages: ids.map((id) => ({ key: id, value: id, partition: 0, headers: { id } })) }),
    );
    root.end();
    for (const s of allSpans(collector)) {
      if (s.parentSpanId === root.spanId) producerSpan.set(String(s.attributes['messaging.kafka.message.key']), s);
    }
  }

  async function startConsumer(topic: string, run: (payload: EachBatchPayload) => Promise<void>, maxBatchLinks?: number): Promise<void> {
    const consumer = traceConsumer(kafka.consumer(consumerConfig(uniqueName('group'))), maxBatchLinks === undefined ? {} : { maxBatchLinks });
    consumers.push(consumer);
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({ eachBatch: run });
  }

  const ten = Array.from({ length: 10 }, (_, i) => `t${i}`);
  const five = Array.from({ length: 5 }, (_, i) => `h${i}`);

  before(async () => {
    raw = kafka.producer();
    await raw.connect();
    const producer = traceProducer(raw);
    // Ten upstream services, each in a trace of its own, whose messages are relayed in one request; two
    // more messages carry t0's context again (forwarded as they were), and one carries none.
    const relayed = ten.map((id) => {
      const upstream = startSpan(`upstream ${id}`, { kind: 'producer' });
      const headers: Record<string, string> = { id };
      inject(headers, { context: contextWithSpan(upstream) });
      upstream.end();
      producerSpan.set(id, upstream);
      return { value: id, partition: 0, headers };
    });
    const { traceparent } = relayed[0]!.headers;
    await raw.send({
      topic: topicLoop,
      messages: [
        ...relayed,
        { value: 'dup0', partition: 0, headers: { id: 'dup0', traceparent: traceparent! } },
        { value: 'dup1', partition: 0, headers: { id: 'dup1', traceparent: traceparent! } },
        { value: 'bare', partition: 0, headers: { id: 'bare' } },
      ],
    });
    await sendTraced(producer, topicHelper, five);
    await sendTraced(producer, topicFail, ['f0', 'f1', 'f2']);

    await Promise.all([
      // The common kafkajs loop: work, resolve, heartbeat.
      startConsumer(topicLoop, async ({ batch, resolveOffset, heartbeat }) => {
        loopBatches.push({ activeSpanId: currentSpan()?.spanContext().spanId, size: batch.messages.length });
        for (const message of batch.messages) {
          await sleep(5);
          resolveOffset(message.offset);
          await heartbeat();
        }
      }),
      // Each message's work scoped with traceBatchMessage; kafkajs resolves the batch at the end.
      startConsumer(
        topicHelper,
        async ({ batch }) => {
          for (const message of batch.messages) {
            await traceBatchMessage(batch, message, async () => {
              const activeSpanId = currentSpan()?.spanContext().spanId;
              await sleep(5);
              const work = span('work', {}, () => currentSpan() as unknown as SpanRecord);
              helperSeen.set(headerText(message.headers?.id)!, { activeSpanId, workParentId: work.parentSpanId });
            });
          }
        },
        3,
      ),
      // Fails on the second message the first time round.
      startConsumer(topicFail, async ({ batch, resolveOffset }) => {
        const ids = batch.messages.map((m) => headerText(m.headers?.id)!);
        failDeliveries.push(ids);
        for (const message of batch.messages) {
          if (failDeliveries.length === 1 && headerText(message.headers?.id) === 'f1') throw boom;
          resolveOffset(message.offset);
        }
      }),
    ]);
    await waitFor('all batches handled', () =>
      loopBatches.reduce((n, b) => n + b.size, 0) >= 13 && helperSeen.size >= 5 && failDeliveries.flat().includes('f2') ? true : undefined,
    );
    // The last span of a batch ends just after the handler returns.
    await waitFor('the spans of the last batches', () => (receiveSpans(topicFail).length >= 2 && receiveSpans(topicHelper).length >= 1 ? true : undefined));
  });

  after(async () => {
    collector.stop();
    await Promise.all(consumers.map((c) => c.disconnect()));
    await raw?.disconnect();
  });

  function receiveSpans(topic: string): SpanRecord[] {
    return allSpans(collector).filter((s) => s.name === `receive ${topic}`);
  }
  function processSpans(topic: string): SpanRecord[] {
    return allSpans(collector).filter((s) => s.name === `process ${topic}`);
  }

  it('a batch from ten traces: one receive span linking the ten producer contexts, once each', () => {
    assert.deepEqual(loopBatches.map((b) => b.size), [13], 'the thirteen messages came as one batch');
    const [receive] = receiveSpans(topicLoop);
    assert.ok(receive);
    assert.equal(receive.kind, 'consumer');
    assert.equal(receive.parentSpanId, undefined);
    assert.equal(loopBatches[0]!.activeSpanId, receive.spanId, 'the handler runs inside the receive span');
    assert.equal(receive.attributes['messaging.batch.message_count'], 13);
    assert.equal(receive.attributes['messaging.operation.type'], 'receive');
    assert.equal(receive.attributes['messaging.destination.partition.id'], '0');
    assert.equal(typeof receive.attributes['messaging.consumer.group.name'], 'string');
    assert.deepEqual(
      receive.links.map((l) => `${l.traceId}/${l.spanId}`).sort(),
      ten.map((id) => `${producerSpan.get(id)!.traceId}/${producerSpan.get(id)!.spanId}`).sort(),
    );
  });

  it('continues all ten traces: each message’s process span is a child of its producer', () => {
    const [receive] = receiveSpans(topicLoop);
    const spans = processSpans(topicLoop);
    assert.equal(spans.length, 13, 'one process span per message');
    for (const id of ten) {
      const producer = producerSpan.get(id)!;
      const trace = collector.traces().find((t) => t.traceId === producer.traceId)!;
      const children = trace.spans.filter((s) => s.name === `process ${topicLoop}` && s.parentSpanId === producer.spanId);
      assert.equal(children.length, id === 't0' ? 3 : 1, `trace of ${id}`);
      for (const child of children) {
        assert.equal(child.kind, 'consumer');
        assert.deepEqual(child.links.map((l) => l.spanId), [receive!.spanId]);
      }
    }
    const bare = spans.find((s) => s.attributes['messaging.kafka.offset'] === 12)!;
    assert.equal(bare.parentSpanId, receive!.spanId, 'a message without context is processed in the batch’s own trace');
    assert.equal(bare.traceId, receive!.traceId);
  });

  it('times each message from one resolveOffset to the next', () => {
    const spans = processSpans(topicLoop).sort(
      (a, b) => (a.attributes['messaging.kafka.offset'] as number) - (b.attributes['messaging.kafka.offset'] as number),
    );
    const [receive] = receiveSpans(topicLoop);
    assert.ok(spans[0]!.timestamp >= receive!.timestamp);
    for (let i = 0; i < spans.length; i++) {
      // Timers run off the event loop's cached clock and may fire up to about a millisecond early.
      assert.ok(spans[i]!.durationUs >= 3500, `message ${i} took its 5 ms (${spans[i]!.durationUs} µs)`);
      if (i > 0) assert.ok(spans[i]!.timestamp >= spans[i - 1]!.timestamp + spans[i - 1]!.durationUs - 1, `message ${i} starts after ${i - 1} ends`);
    }
    const last = spans.at(-1)!;
    assert.ok(last.timestamp + last.durationUs <= receive!.timestamp + receive!.durationUs + 1);
  });

  it('traceBatchMessage: the work on one message runs inside its process span', () => {
    const spans = processSpans(topicHelper);
    assert.equal(spans.length, 5, 'one process span per message, none added at the end');
    for (const id of five) {
      const producer = producerSpan.get(id)!;
      const processed = spans.find((s) => s.parentSpanId === producer.spanId);
      assert.ok(processed, `${id} continues its producer's trace`);
      assert.equal(processed.traceId, producer.traceId);
      assert.ok(processed.durationUs >= 3500, `${id} took its 5 ms (${processed.durationUs} µs)`);
      assert.equal(helperSeen.get(id)?.activeSpanId, processed.spanId);
      assert.equal(helperSeen.get(id)?.workParentId, processed.spanId);
    }
  });

  it('links at most maxBatchLinks producers', () => {
    const [receive] = receiveSpans(topicHelper);
    assert.equal(receive?.links.length, 3);
    assert.equal(receive?.attributes['messaging.batch.message_count'], 5);
  });

  it('a failing batch: the error is on the receive span and on the message being processed, the rest is delivered again', () => {
    assert.deepEqual(failDeliveries[0], ['f0', 'f1', 'f2']);
    assert.deepEqual(failDeliveries[1], ['f1', 'f2'], 'kafkajs redelivers from the first unresolved message');
    const [failed, retried] = receiveSpans(topicFail);
    assert.deepEqual(failed!.status, { code: 'error', message: boom.message });
    assert.equal(retried!.status.code, 'unset');
    const byId = (id: string): SpanRecord[] => processSpans(topicFail).filter((s) => s.parentSpanId === producerSpan.get(id)!.spanId);
    assert.deepEqual(byId('f0').map((s) => s.status.code), ['unset']);
    assert.deepEqual(byId('f1').map((s) => s.status.code), ['error', 'unset']);
    assert.deepEqual(byId('f2').map((s) => s.status.code), ['unset'], 'not blamed for a failure it never reached');
  });
});
