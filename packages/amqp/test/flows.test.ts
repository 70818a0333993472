import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { after, before, beforeEach, describe, it } from 'node:test';
import express from 'express';
import type { Channel, ChannelModel, ConsumeMessage } from 'amqplib';
import { Collector, contextWithSpan, currentSpan, inject, startSpan, withContext, type SpanRecord } from '@cyb/core';
import { traceHttp } from '@cyb/http';
import { traceChannel } from '@cyb/amqp';
import { allSpans, cleanup, connect, delay, spansNamed, unique, waitFor } from './helpers.js';

describe('message flows through RabbitMQ', () => {
  let connection: ChannelModel;
  let collector: Collector;
  const queues: string[] = [];
  const exchanges: string[] = [];
  const channels: Channel[] = [];

  async function tracedChannel(): Promise<Channel> {
    const ch = traceChannel(await connection.createChannel());
    channels.push(ch);
    return ch;
  }
  async function queue(ch: Channel, what: string): Promise<string> {
    const q = unique(what);
    queues.push(q);
    await ch.assertQueue(q);
    return q;
  }

  before(async () => {
    connection = await connect();
    collector = new Collector({ maxTraces: 5000 }).start();
  });
  beforeEach(() => collector.clear());
  after(async () => {
    collector.stop();
    for (const ch of channels) await ch.close().catch(() => undefined);
    await cleanup(connection, queues, exchanges);
    await connection.close();
  });

  it('HTTP request -> publish -> consume -> publish -> consume is one trace with an unbroken parent chain', async () => {
    const ch = await tracedChannel();
    const q1 = await queue(ch, 'chain-1');
    const q2 = await queue(ch, 'chain-2');

    const app = express();
    app.use(traceHttp());
    app.post('/orders', (_req, res) => {
      ch.sendToQueue(q1, Buffer.from('order'));
      res.status(202).end();
    });
    const server: Server = await new Promise((resolve) => {
      const s = app.listen(0, '127.0.0.1', () => resolve(s));
    });
    try {
      await ch.consume(q1, (msg) => {
        if (!msg) return;
        ch.sendToQueue(q2, Buffer.from('shipment'));
        ch.ack(msg);
      });
      await ch.consume(q2, async (msg) => {
        if (!msg) return;
        await delay(5);
        ch.ack(msg);
      });

      const client = startSpan('client POST /orders', { kind: 'client', parent: null });
      const headers: Record<string, string> = {};
      inject(headers, { context: contextWithSpan(client) });
      const { port } = server.address() as AddressInfo;
      const res = await fetch(`http://127.0.0.1:${port}/orders`, { method: 'POST', headers });
      assert.equal(res.status, 202);
      client.end();

      await spansNamed(collector, `process ${q2}`, 1);
      const trace = await waitFor('the whole trace', () => {
        const t = collector.traces().find((x) => x.traceId === client.traceId);
        return t && t.spans.length >= 6 ? t : undefined;
      });
      const byName = (name: string): SpanRecord => {
        const found = trace.spans.filter((s) => s.name === name);
        assert.equal(found.length, 1, `exactly one span ${name} in ${trace.spans.map((s) => s.name).join(', ')}`);
        return found[0]!;
      };
      const server_ = trace.spans.find((s) => s.kind === 'server');
      assert.ok(server_, 'the SERVER span of @cyb/http');
      const chain = [
        byName('client POST /orders'),
        server_,
        byName(`publish ${q1}`),
        byName(`process ${q1}`),
        byName(`publish ${q2}`),
        byName(`process ${q2}`),
      ];
      assert.deepEqual(chain.map((s) => s.kind), ['client', 'server', 'producer', 'consumer', 'producer', 'consumer']);
      for (let i = 1; i < chain.length; i++) {
        assert.equal(chain[i]!.traceId, client.traceId, `${chain[i]!.name} in the trace`);
        assert.equal(chain[i]!.parentSpanId, chain[i - 1]!.spanId, `${chain[i]!.name} is a child of ${chain[i - 1]!.name}`);
      }
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('a topic exchange fanning out to two queues gives two consumer branches in one trace', async () => {
    const ch = await tracedChannel();
    const x = unique('topic');
    exchanges.push(x);
    await ch.assertExchange(x, 'topic', { autoDelete: false });
    const qa = await queue(ch, 'fan-a');
    const qb = await queue(ch, 'fan-b');
    await ch.bindQueue(qa, x, 'order.*');
    await ch.bindQueue(qb, x, 'order.#');
    for (const q of [qa, qb]) {
      await ch.consume(q, (msg) => {
        if (msg) ch.ack(msg);
      });
    }
    const root = startSpan('place order', { parent: null });
    withContext(contextWithSpan(root), () => ch.publish(x, 'order.created', Buffer.from('{}')));
    root.end();
    const [a] = await spansNamed(collector, `process ${qa}`, 1);
    const [b] = await spansNamed(collector, `process ${qb}`, 1);
    const [producer] = await spansNamed(collector, `publish ${x}`, 1);
    assert.equal(producer!.parentSpanId, root.spanId);
    for (const branch of [a!, b!]) {
      assert.equal(branch.traceId, root.traceId);
      assert.equal(branch.parentSpanId, producer!.spanId);
      assert.equal(branch.attributes['messaging.rabbitmq.destination.routing_key'], 'order.created');
    }
    assert.notEqual(a!.spanId, b!.spanId);
  });

  it('nack with requeue gives a second process span, marked redelivered, under the same producer', async () => {
    const ch = await tracedChannel();
    const q = await queue(ch, 'redeliver');
    let deliveries = 0;
    await ch.consume(q, (msg) => {
      if (!msg) return;
      deliveries++;
      if (!msg.fields.redelivered) ch.nack(msg, false, true);
      else ch.ack(msg);
    });
    ch.sendToQueue(q, Buffer.from('again'));
    const spans = await spansNamed(collector, `process ${q}`, 2);
    assert.equal(deliveries, 2);
    const [producer] = await spansNamed(collector, `publish ${q}`, 1);
    const first = spans.find((s) => s.attributes['messaging.rabbitmq.message.redelivered'] === false);
    const second = spans.find((s) => s.attributes['messaging.rabbitmq.message.redelivered'] === true);
    assert.ok(first && second);
    assert.equal(first.attributes['messaging.rabbitmq.message.settle'], 'nack');
    assert.equal(first.attributes['messaging.rabbitmq.message.requeue'], true);
    assert.equal(second.attributes['messaging.rabbitmq.message.settle'], 'ack');
    for (const s of [first, second]) {
      assert.equal(s.traceId, producer!.traceId);
      assert.equal(s.parentSpanId, producer!.spanId);
    }
  });

  it('1000 messages in flight on one channel, each in its own trace, see no cross-talk', async () => {
    const ch = await tracedChannel();
    const q = await queue(ch, 'inflight');
    const N = 1000;
    await ch.prefetch(N);
    const expected = new Map<string, string>(); // messageId -> trace id of the publisher's root span
    const contextErrors: string[] = [];
    let acked = 0;
    const handler = async (msg: ConsumeMessage | null): Promise<void> => {
      if (!msg) return;
      const id = String(msg.properties.messageId);
      const want = expected.get(id);
      if (currentSpan()?.spanContext().traceId !== want) contextErrors.push(`${id} at start`);
      // Interleave: every handler is suspended while others run.
      await delay(Math.floor(Math.random() * 20));
      if (currentSpan()?.spanContext().traceId !== want) contextErrors.push(`${id} after await`);
      await Promise.resolve();
      setImmediate(() => {
        if (currentSpan()?.spanContext().traceId !== want) contextErrors.push(`${id} in setImmediate`);
        ch.ack(msg);
        acked++;
      });
    };
    await ch.consume(q, handler);
    for (let i = 0; i < N; i++) {
      const root = startSpan(`request ${i}`, { parent: null });
      expected.set(String(i), root.traceId);
      withContext(contextWithSpan(root), () => ch.sendToQueue(q, Buffer.from(`m${i}`), { messageId: String(i) }));
      root.end();
    }
    await waitFor('every message acked', () => acked === N, 20_000);
    const spans = allSpans(collector);
    const producers = new Map(spans.filter((s) => s.kind === 'producer').map((s) => [String(s.attributes['messaging.message.id']), s]));
    const consumers = spans.filter((s) => s.kind === 'consumer' && s.name === `process ${q}`);
    assert.equal(consumers.length, N);
    assert.deepEqual(contextErrors, []);
    let mismatches = 0;
    for (const c of consumers) {
      const id = String(c.attributes['messaging.message.id']);
      const p = producers.get(id);
      if (!p || c.traceId !== expected.get(id) || p.traceId !== expected.get(id) || c.parentSpanId !== p.spanId) mismatches++;
    }
    assert.equal(mismatches, 0);
    assert.equal(new Set(consumers.map((c) => c.traceId)).size, N, 'distinct traces');
    assert.ok(consumers.every((c) => c.attributes['messaging.rabbitmq.message.settle'] === 'ack'));
  });
});
