import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import amqplib, { type Channel, type ChannelModel, type ConfirmChannel, type GetMessage } from 'amqplib';
import { Collector, span, type SpanRecord } from '@cyb/core';
import { consumeVsm, createVsm, type DispatchContext, type Vsm, type VsmConsumer } from '../src/index.js';
import { checkStatus, handleOperation, type Work } from './fixtures/s1-operations.js';
import { Coordinator } from './fixtures/s2-coordination.js';
import { controlHandlers } from './fixtures/s3-control.js';
import { intelligenceHandlers } from './fixtures/s4-intelligence.js';
import { PolicyEngine } from './fixtures/s5-policy.js';
import { AMQP_URL, allSpans, declaration, spanNamed, uniqueName, waitFor } from './helpers.js';

const SYSTEMS = ['s1', 's2', 's3', 's4', 's5'] as const;

describe('consumeVsm', () => {
  const collector = new Collector({ maxTraces: 500, maxSpansPerTrace: 100 });
  const exchange = uniqueName('ex');
  const queues: string[] = [];
  const exchanges: string[] = [exchange];
  const consumers: VsmConsumer[] = [];
  let connection: ChannelModel | undefined;
  let channel: ConfirmChannel;
  /** Untraced: for looking at what is on the wire and cleaning up. */
  let plain: Channel;
  let vsm: Vsm;

  async function queue(name: string, args?: Record<string, unknown>): Promise<string> {
    await plain.assertQueue(name, { durable: false, arguments: args });
    queues.push(name, `${name}.dead-letter`);
    return name;
  }

  async function getWithin(q: string, timeoutMs = 3000): Promise<GetMessage> {
    return waitFor(`a message on ${q}`, async () => (await plain.get(q, { noAck: true })) || undefined, timeoutMs);
  }

  before(async () => {
    collector.start();
    const conn = await amqplib.connect(AMQP_URL);
    connection = conn;
    channel = await conn.createConfirmChannel();
    plain = await conn.createChannel();
    await plain.assertExchange(exchange, 'topic', { durable: false });
    vsm = createVsm()
      .system('s1', { operation: handleOperation, status: checkStatus })
      .system('s2', new Coordinator())
      .system('s3', controlHandlers)
      .system('s4', intelligenceHandlers)
      .system('s5', PolicyEngine)
      .system('s6', {
        fail(): never {
          throw new Error('s6 is out of order');
        },
      });
  });

  after(async () => {
    collector.stop();
    if (connection === undefined) return; // RabbitMQ was not reachable; before() already failed
    for (const c of consumers) await c.cancel().catch(() => undefined);
    for (const q of queues) await plain.deleteQueue(q).catch(() => undefined);
    for (const e of exchanges) await plain.deleteExchange(e).catch(() => undefined);
    await connection.close();
  });

  beforeEach(() => collector.clear());

  it('carries one request from S1 to S5 over RabbitMQ as one trace', async () => {
    const spy = await queue(`${exchange}.spy`);
    await plain.bindQueue(spy, exchange, '#');
    for (const system of SYSTEMS) {
      const q = await queue(`${exchange}.${system}`);
      await plain.bindQueue(q, exchange, `${system}.#`);
      consumers.push(await consumeVsm(channel, q, vsm));
    }
    await span('POST /orders', { kind: 'server' }, async () => {
      const work: Work = { orderId: 42, hops: [] };
      channel.publish(exchange, 's1.operation', Buffer.from(JSON.stringify(work)), { contentType: 'application/json' });
    });

    const trace = await waitFor('the whole S1 -> S5 trace', () => {
      const t = collector.traces().find((x) => x.spans.some((s) => s.name === 'POST /orders'));
      return t && t.spans.filter((s) => s.name.startsWith('process ')).length === 5 && t.spans.some((s) => s.name === 'vsm.s5 policy') ? t : undefined;
    });
    const spans = trace.spans;
    const byId = new Map(spans.map((s) => [s.spanId, s]));
    const root = spanNamed(spans, 'POST /orders');
    const operations = ['s1 operation', 's2 coordinate', 's3 control', 's4 intelligence', 's5 policy'];
    let parent: SpanRecord = root;
    for (const [i, op] of operations.entries()) {
      const dispatch = spanNamed(spans, `vsm.${op}`);
      const consumer = byId.get(dispatch.parentSpanId ?? '');
      const producer = byId.get(consumer?.parentSpanId ?? '');
      assert.equal(consumer?.kind, 'consumer', op);
      assert.equal(consumer?.name, `process ${exchange}.${SYSTEMS[i]}`);
      assert.equal(producer?.kind, 'producer', op);
      assert.equal(producer?.parentSpanId, parent.spanId, `${op} was sent from the previous step`);
      assert.equal(dispatch.traceId, root.traceId);
      parent = dispatch;
    }
    // The dynamic edge at the end carries the declaration of the static method that ran.
    const s5 = spanNamed(spans, 'vsm.s5 policy');
    assert.equal(s5.function, 'PolicyEngine.policy');
    assert.equal(s5.line, declaration('s5-policy.ts', 'static policy(').line);

    // On the wire: five messages, each with a traceparent of this trace.
    const keys: string[] = [];
    for (let i = 0; i < 5; i++) {
      const m = await getWithin(spy);
      keys.push(m.fields.routingKey);
      const traceparent = String(m.properties.headers?.traceparent);
      assert.equal(traceparent.split('-')[1], root.traceId);
      // The payload size on each dispatch span is the message body's.
      assert.equal(spanNamed(spans, `vsm.${operations[i]}`).attributes['vsm.payload.size'], m.content.length);
    }
    assert.deepEqual(keys, ['s1.operation', 's2.coordinate', 's3.control', 's4.intelligence', 's5.policy']);
    for (const system of SYSTEMS) assert.equal((await plain.checkQueue(`${exchange}.${system}`)).messageCount, 0);
  });

  it('dead-letters an unknown operation with its content and headers, then acks it', async () => {
    const ex = uniqueName('unknown');
    exchanges.push(ex);
    await plain.assertExchange(ex, 'topic', { durable: false });
    const q = await queue(`${ex}.in`);
    await plain.bindQueue(q, ex, '#');
    consumers.push(await consumeVsm(channel, q, vsm));
    const dead = `${q}.dead-letter`;

    channel.publish(ex, 's1.teleport', Buffer.from('{"to":"mars"}'), { contentType: 'application/json', headers: { 'x-order': 'keep-me' }, messageId: 'm-1' });
    const m = await getWithin(dead);
    assert.equal(m.content.toString(), '{"to":"mars"}');
    assert.equal(m.properties.messageId, 'm-1');
    assert.equal(m.properties.headers?.['x-order'], 'keep-me');
    assert.equal(m.properties.headers?.['x-vsm-error'], 'unknown-operation');
    assert.equal(m.properties.headers?.['x-vsm-original-routing-key'], 's1.teleport');
    const failed = await waitFor('the dispatch span', () => allSpans(collector).find((s) => s.name === 'vsm.s1 teleport'));
    assert.equal(failed.status.code, 'error');
    assert.equal(failed.events[0]?.attributes?.['exception.type'], 'UnknownOperationError');

    // A routing key that names no operation at all, and content that is not JSON, are kept the same way.
    channel.publish(ex, 'no-operation-here', Buffer.from('x'));
    channel.publish(ex, 's1.status', Buffer.from('not json'), { contentType: 'application/json' });
    const more = [await getWithin(dead), await getWithin(dead)].map((x) => String(x.properties.headers?.['x-vsm-original-routing-key']));
    assert.deepEqual(more.sort(), ['no-operation-here', 's1.status']);
    assert.equal((await plain.checkQueue(q)).messageCount, 0);
    const unroutable = await waitFor('the process span of the unroutable message', () =>
      allSpans(collector).find((s) => s.kind === 'consumer' && s.status.code === 'error' && s.attributes['messaging.rabbitmq.destination.routing_key'] === 'no-operation-here'),
    );
    assert.equal(unroutable.events.find((e) => e.name === 'exception')?.attributes?.['exception.type'], 'UnknownOperationError');
  });

  it("requeues an unknown operation with onUnknown: 'nack'", async () => {
    const q = await queue(uniqueName('nack'));
    const consumer = await consumeVsm(channel, q, vsm, { onUnknown: 'nack' });
    channel.sendToQueue(q, Buffer.from('{}'), { headers: {} });
    // The default exchange routes by queue name, so this message names no system.operation.
    await waitFor('the first delivery to be nacked', () => allSpans(collector).find((s) => s.kind === 'consumer' && s.attributes['messaging.rabbitmq.destination.routing_key'] === q));
    await consumer.cancel();
    const m = await getWithin(q);
    assert.equal(m.content.toString(), '{}');
  });

  it("leaves an unknown operation to the queue's dead-letter exchange with onUnknown: 'reject'", async () => {
    const dlx = uniqueName('dlx');
    exchanges.push(dlx);
    await plain.assertExchange(dlx, 'fanout', { durable: false });
    const graveyard = await queue(`${dlx}.graveyard`);
    await plain.bindQueue(graveyard, dlx, '');
    const q = await queue(uniqueName('reject'), { 'x-dead-letter-exchange': dlx });
    consumers.push(await consumeVsm(channel, q, vsm, { onUnknown: 'reject' }));
    channel.sendToQueue(q, Buffer.from('"lost?"'));
    const m = await getWithin(graveyard);
    assert.equal(m.content.toString(), '"lost?"');
    assert.ok(Array.isArray(m.properties.headers?.['x-death']));
  });

  it('dead-letters a message whose handler fails, to the configured queue', async () => {
    const ex = uniqueName('fail');
    exchanges.push(ex);
    await plain.assertExchange(ex, 'topic', { durable: false });
    const q = await queue(`${ex}.in`);
    await plain.bindQueue(q, ex, '#');
    const target = await queue(`${ex}.errors`);
    consumers.push(await consumeVsm(channel, q, vsm, { deadLetter: { queue: target } }));
    channel.publish(ex, 's6.fail', Buffer.from('{"attempt":1}'), { contentType: 'application/json' });
    const m = await getWithin(target);
    assert.equal(m.content.toString(), '{"attempt":1}');
    assert.equal(m.properties.headers?.['x-vsm-error'], 'handler-error');
    assert.equal(m.properties.headers?.['x-vsm-error-message'], 's6 is out of order');
    const s = await waitFor('the failed dispatch', () => allSpans(collector).find((x) => x.name === 'vsm.s6 fail'));
    assert.equal(s.status.code, 'error');
  });

  it("routes by the content with route: 'body', and sends meta along", async () => {
    const q = await queue(uniqueName('body'));
    let received: { payload: unknown; ctx: DispatchContext } | undefined;
    const bodyVsm = createVsm()
      .system('a', {
        async first(payload: { n: number }, ctx: DispatchContext) {
          await ctx.send('b', 'second', { n: payload.n + 1 }, { requestId: 'req-9' });
        },
      })
      .system('b', {
        second(payload: unknown, ctx: DispatchContext) {
          received = { payload, ctx };
        },
      });
    consumers.push(await consumeVsm(channel, q, bodyVsm, { route: 'body' }));
    await span('job', {}, async () => {
      channel.sendToQueue(q, Buffer.from(JSON.stringify({ system: 'a', operation: 'first', payload: { n: 1 } })));
    });
    const got = await waitFor('the second operation', () => received);
    assert.deepEqual(got.payload, { n: 2 });
    assert.equal(got.ctx.meta.requestId, 'req-9');
    assert.equal((got.ctx.meta.amqp as { routingKey: string }).routingKey, q);
    const spans = await waitFor('both dispatches', () => {
      const all = allSpans(collector);
      return all.some((s) => s.name === 'vsm.b second') ? all : undefined;
    });
    assert.equal(spanNamed(spans, 'vsm.b second').traceId, spanNamed(spans, 'job').traceId);
  });

  it('sends meta in a header with route: routing-key', async () => {
    const ex = uniqueName('meta');
    exchanges.push(ex);
    await plain.assertExchange(ex, 'topic', { durable: false });
    const q = await queue(`${ex}.in`);
    await plain.bindQueue(q, ex, '#');
    let meta: DispatchContext['meta'] | undefined;
    const own = createVsm()
      .system('s1', { start: (_p: unknown, ctx: DispatchContext) => ctx.send('s2', 'finish', { ok: true }, { caller: 's1' }) })
      .system('s2', {
        finish(_p: unknown, ctx: DispatchContext) {
          meta = ctx.meta;
        },
      });
    consumers.push(await consumeVsm(channel, q, own));
    channel.publish(ex, 's1.start', Buffer.from('{}'), { correlationId: 'conv-1' });
    const got = await waitFor('the finish operation', () => meta);
    assert.equal(got.caller, 's1');
    const amqp = got.amqp as { routingKey: string; correlationId: string; exchange: string };
    assert.equal(amqp.routingKey, 's2.finish');
    assert.equal(amqp.exchange, ex);
    assert.equal(amqp.correlationId, 'conv-1', 'the conversation id follows the request');
  });

  it('fails fast on bad arguments', async () => {
    await assert.rejects(consumeVsm(channel, '', vsm), TypeError);
    await assert.rejects(consumeVsm(channel, 'q', {} as Vsm), TypeError);
    await assert.rejects(consumeVsm(channel, 'q', vsm, { onUnknown: 'drop' as 'nack' }), TypeError);
  });
});
