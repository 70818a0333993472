import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import * as callbackApi from 'amqplib/callback_api';
import type { Channel, ChannelModel, ConsumeMessage, GetMessage } from 'amqplib';
import { propagation } from '@opentelemetry/api';
import { Collector, currentSpan, startSpan, withContext, contextWithSpan } from '@cyb/core';
import { amqpStats, messageContext, traceChannel } from '@cyb/amqp';
import { AMQP_URL, allSpans, cleanup, connect, delay, spansNamed, unique, waitFor } from './helpers.js';

const W3C = /^00-([0-9a-f]{32})-([0-9a-f]{16})-0[13]$/;

describe('traceChannel (promise API)', () => {
  let connection: ChannelModel;
  let raw: Channel;
  let collector: Collector;
  const queues: string[] = [];
  const exchanges: string[] = [];

  function queueName(what: string): string {
    const q = unique(what);
    queues.push(q);
    return q;
  }

  before(async () => {
    connection = await connect();
    raw = await connection.createChannel();
    collector = new Collector({ maxTraces: 5000 }).start();
  });
  beforeEach(() => collector.clear());
  after(async () => {
    collector.stop();
    await raw.close().catch(() => undefined);
    await cleanup(connection, queues, exchanges);
    await connection.close();
  });

  describe('publish / sendToQueue', () => {
    it('returns the same channel, instrumented in place, and a second call changes nothing', async () => {
      const ch = await connection.createChannel();
      const proto = Object.getPrototypeOf(ch) as object;
      const keys = Object.keys(ch);
      assert.equal(traceChannel(ch), ch);
      assert.equal(traceChannel(ch), ch);
      assert.equal(Object.getPrototypeOf(ch), proto);
      assert.deepEqual(Object.keys(ch), keys, 'no new enumerable properties');
      assert.equal(ch.publish.name, 'publish');
      const q = queueName('identity');
      await ch.assertQueue(q, { autoDelete: false });
      ch.sendToQueue(q, Buffer.from('once'));
      await ch.close();
      const published = await spansNamed(collector, `publish ${q}`, 1);
      await delay(50);
      assert.equal(allSpans(collector).filter((s) => s.name === `publish ${q}`).length, 1, 'traced once, not twice');
      assert.equal(published[0]!.kind, 'producer');
    });

    it('injects W3C and B3 into a copy of frozen options; the wire carries the caller headers and inherited options too', async () => {
      const ch = traceChannel(await connection.createChannel());
      const q = queueName('inject');
      await ch.assertQueue(q);
      const headers = Object.freeze({ 'x-app': 'kept', tracestate: 'stale=1' });
      const options = Object.freeze(Object.assign(Object.create({ persistent: true }) as object, {
        headers,
        messageId: 'msg-1',
        correlationId: 'corr-1',
      }));
      const root = startSpan('caller', { parent: null });
      const returned = withContext(contextWithSpan(root), () => ch.sendToQueue(q, Buffer.from('hello'), options));
      root.end();
      assert.equal(returned, true, 'the backpressure boolean is amqplib\'s');
      assert.deepEqual(Object.keys(headers), ['x-app', 'tracestate'], 'caller headers untouched');
      assert.equal((options as { headers: object }).headers, headers);

      const msg = await waitForGet(raw, q);
      const wire = msg.properties.headers as Record<string, unknown>;
      const [span] = await spansNamed(collector, `publish ${q}`, 1);
      const m = W3C.exec(String(wire.traceparent));
      assert.ok(m, `traceparent on the wire: ${String(wire.traceparent)}`);
      assert.equal(m[1], span!.traceId);
      assert.equal(m[2], span!.spanId);
      assert.equal(span!.traceId, root.traceId);
      assert.equal(span!.parentSpanId, root.spanId);
      assert.match(String(wire.b3), new RegExp(`^${span!.traceId}-${span!.spanId}-1$`));
      assert.equal(wire['x-app'], 'kept');
      assert.equal(wire.tracestate, undefined, 'a stale tracestate of the caller is not sent beside a new traceparent');
      assert.equal(msg.properties.deliveryMode, 2, 'an inherited option still applies');
      assert.equal(msg.properties.messageId, 'msg-1');
      assert.equal(msg.content.toString(), 'hello');
      assert.deepEqual(span!.attributes, {
        'messaging.system': 'rabbitmq',
        'messaging.operation.type': 'send',
        'messaging.operation.name': 'publish',
        'messaging.destination.name': q,
        'messaging.rabbitmq.destination.routing_key': q,
        'messaging.message.id': 'msg-1',
        'messaging.message.conversation_id': 'corr-1',
        'messaging.message.body.size': 5,
      });
      await ch.close();
    });

    it('gives every message its own headers: nothing of one publish leaks into the next', async () => {
      const ch = traceChannel(await connection.createChannel());
      const q = queueName('sequence');
      await ch.assertQueue(q);
      const first = startSpan('first', { parent: null });
      const second = startSpan('second', { parent: null });
      const withBaggage = propagation.setBaggage(contextWithSpan(first), propagation.createBaggage({ tenant: { value: 'acme' } }));
      const options = Object.freeze({ messageId: 'a' });
      withContext(withBaggage, () => ch.sendToQueue(q, Buffer.from('1'), options));
      withContext(contextWithSpan(second), () => ch.sendToQueue(q, Buffer.from('2'), { messageId: 'b' }));
      ch.sendToQueue(q, Buffer.from('3'), { messageId: 'c', headers: { 'x-own': 'yes' } });
      ch.sendToQueue(q, Buffer.from('4'));
      first.end();
      second.end();
      assert.deepEqual(Object.keys(options), ['messageId'], 'no headers added to the caller\'s options');
      const got: GetMessage[] = [];
      while (got.length < 4) got.push(await waitForGet(raw, q));
      const headers = got.map((m) => m.properties.headers as Record<string, unknown>);
      assert.equal(headers[0]!.baggage, 'tenant=acme');
      assert.match(String(headers[0]!.traceparent), new RegExp(`^00-${first.traceId}-`));
      assert.equal(headers[1]!.baggage, undefined, 'the first message\'s baggage is not carried on');
      assert.match(String(headers[1]!.traceparent), new RegExp(`^00-${second.traceId}-`));
      assert.deepEqual(Object.keys(headers[1]!).sort(), ['b3', 'traceparent']);
      assert.equal(headers[2]!['x-own'], 'yes');
      assert.equal(headers[3]!['x-own'], undefined);
      const ids = new Set(headers.map((h) => String(h.traceparent).split('-')[1]));
      assert.equal(ids.size, 4, 'four traces');
      await ch.close();
    });

    it('names the span after the exchange and keeps the routing key', async () => {
      const ch = traceChannel(await connection.createChannel());
      const x = unique('direct');
      exchanges.push(x);
      await ch.assertExchange(x, 'direct', { autoDelete: false });
      assert.equal(ch.publish(x, 'rk.1', Buffer.from('x')), true);
      const [span] = await spansNamed(collector, `publish ${x}`, 1);
      assert.equal(span!.attributes['messaging.destination.name'], x);
      assert.equal(span!.attributes['messaging.rabbitmq.destination.routing_key'], 'rk.1');
      assert.equal(span!.parentSpanId, undefined, 'no active span: a new trace');
      await ch.close();
    });

    it('passes a false backpressure boolean and the drain event through', async () => {
      // amqplib's per-channel write buffer counts frames; a small high-water mark fills it quickly.
      const ch = traceChannel(await connection.createChannel({ highWaterMark: 8 }));
      let result = true;
      let sent = 0;
      // Nobody is bound to this routing key: the broker drops the messages.
      const nowhere = unique('nowhere');
      while (result && sent < 10_000) {
        result = ch.publish('', nowhere, Buffer.from('x'));
        sent++;
      }
      assert.equal(result, false, 'amqplib signalled backpressure');
      assert.ok(sent < 10_000);
      await new Promise<void>((resolve) => ch.once('drain', () => resolve()));
      await ch.close();
    });

    it('fails and ends the span, and rethrows amqplib\'s own error, when publishing on a closed channel', async () => {
      const ch = traceChannel(await connection.createChannel());
      await ch.close();
      const q = unique('closed');
      assert.throws(() => ch.sendToQueue(q, Buffer.from('x')), (err: Error) => err.name === 'IllegalOperationError');
      const [span] = await spansNamed(collector, `publish ${q}`, 1);
      assert.equal(span!.status.code, 'error');
    });

    it('validates options at setup', async () => {
      const ch = await connection.createChannel();
      assert.throws(() => traceChannel(ch, { settleTimeoutMs: -1 }), TypeError);
      assert.throws(() => traceChannel(ch, { maxPending: Number.NaN }), TypeError);
      assert.throws(() => traceChannel({} as Channel), TypeError);
      await ch.close();
    });
  });

  describe('consume', () => {
    it('runs the callback inside a CONSUMER span, child of the producer, ended by ack after async work', async () => {
      const ch = traceChannel(await connection.createChannel());
      const q = queueName('consume');
      await ch.assertQueue(q);
      let inside: string | undefined;
      let insideAfterAwait: string | undefined;
      await ch.consume(q, async (msg) => {
        if (!msg) return;
        inside = currentSpan()?.spanContext().spanId;
        await delay(60);
        insideAfterAwait = currentSpan()?.spanContext().spanId;
        ch.ack(msg);
      });
      ch.sendToQueue(q, Buffer.from('work'), { messageId: 'id-7' });
      const [consumer] = await spansNamed(collector, `process ${q}`, 1);
      const [producer] = await spansNamed(collector, `publish ${q}`, 1);
      assert.equal(consumer!.kind, 'consumer');
      assert.equal(consumer!.traceId, producer!.traceId);
      assert.equal(consumer!.parentSpanId, producer!.spanId);
      assert.equal(inside, consumer!.spanId);
      assert.equal(insideAfterAwait, consumer!.spanId);
      assert.ok(consumer!.durationUs >= 50_000, `the span covers the async handler (${consumer!.durationUs} us)`);
      assert.equal(consumer!.attributes['messaging.rabbitmq.message.settle'], 'ack');
      assert.equal(consumer!.attributes['messaging.rabbitmq.message.redelivered'], false);
      assert.equal(consumer!.attributes['messaging.operation.type'], 'process');
      assert.equal(consumer!.attributes['messaging.destination.name'], q);
      assert.equal(consumer!.attributes['messaging.message.id'], 'id-7');
      assert.equal(consumer!.status.code, 'unset');
      await ch.close();
    });

    it('with noAck ends the span when the promise the callback returned settles', async () => {
      const ch = traceChannel(await connection.createChannel());
      const q = queueName('noack');
      await ch.assertQueue(q);
      // (A rejecting handler is covered in semantics.test.ts, in a process of its own.)
      await ch.consume(q, async () => {
        await delay(40);
      }, { noAck: true });
      ch.sendToQueue(q, Buffer.from('good'));
      const [span] = await spansNamed(collector, `process ${q}`, 1);
      assert.ok(span!.durationUs >= 35_000, `ended after the promise (${span!.durationUs} us)`);
      assert.equal(span!.attributes['messaging.rabbitmq.message.settle'], 'auto');
      assert.equal(span!.status.code, 'unset');
      await ch.close();
    });

    it('records each settle: nack, reject, ack with allUpTo, ackAll, nackAll', async () => {
      const ch = traceChannel(await connection.createChannel());
      const q = queueName('settle');
      await ch.assertQueue(q);
      await ch.prefetch(0);
      const received: ConsumeMessage[] = [];
      await ch.consume(q, (msg) => {
        if (msg) received.push(msg);
      });
      const send = (id: string): boolean => ch.sendToQueue(q, Buffer.from(id), { messageId: id });
      for (const id of ['n', 'r', 'u1', 'u2', 'u3', 'a1', 'a2', 'z1']) send(id);
      await waitFor('8 deliveries', () => received.length === 8);
      const byId = (id: string): ConsumeMessage => received.find((m) => m.properties.messageId === id)!;
      ch.nack(byId('n'), false, false);
      ch.reject(byId('r'), false);
      ch.ack(byId('u3'), true); // settles u1..u3: n and r are settled already
      ch.ackAll();
      const spans = await spansNamed(collector, `process ${q}`, 7);
      const settle = (id: string): unknown => spans.find((s) => s.attributes['messaging.message.id'] === id)?.attributes['messaging.rabbitmq.message.settle'];
      assert.equal(settle('n'), 'nack');
      assert.equal(spans.find((s) => s.attributes['messaging.message.id'] === 'n')!.attributes['messaging.rabbitmq.message.requeue'], false);
      assert.equal(settle('r'), 'reject');
      for (const id of ['u1', 'u2', 'u3', 'a1', 'a2']) assert.equal(settle(id), 'ack', id);
      // z1 arrived in the same batch; it was acked by ackAll too.
      assert.equal(settle('z1'), 'ack');

      received.length = 0;
      send('k1');
      send('k2');
      await waitFor('2 deliveries', () => received.length === 2);
      ch.nackAll(false);
      const nacked = await waitFor('nackAll spans', () => {
        const found = allSpans(collector).filter((s) => s.kind === 'consumer' && (s.attributes['messaging.message.id'] === 'k1' || s.attributes['messaging.message.id'] === 'k2'));
        return found.length === 2 ? found : undefined;
      });
      for (const s of nacked) {
        assert.equal(s.attributes['messaging.rabbitmq.message.settle'], 'nack');
        assert.equal(s.attributes['messaging.rabbitmq.message.requeue'], false);
      }
      await ch.close();
    });

    it('with link: true starts a new trace linked to the producer', async () => {
      const ch = traceChannel(await connection.createChannel(), { link: true });
      const q = queueName('link');
      await ch.assertQueue(q);
      await ch.consume(q, (msg) => {
        if (msg) ch.ack(msg);
      });
      ch.sendToQueue(q, Buffer.from('x'));
      const [consumer] = await spansNamed(collector, `process ${q}`, 1);
      const [producer] = await spansNamed(collector, `publish ${q}`, 1);
      assert.notEqual(consumer!.traceId, producer!.traceId);
      assert.equal(consumer!.parentSpanId, undefined);
      assert.deepEqual(consumer!.links.map((l) => [l.traceId, l.spanId]), [[producer!.traceId, producer!.spanId]]);
      await ch.close();
    });

    it('passes the broker\'s consumer cancellation (null) through untouched', async () => {
      const ch = traceChannel(await connection.createChannel());
      const q = unique('cancelled');
      await ch.assertQueue(q);
      const seen: unknown[] = [];
      await ch.consume(q, (msg) => {
        seen.push(msg);
      });
      await raw.deleteQueue(q);
      await waitFor('the cancel notification', () => seen.length === 1);
      assert.equal(seen[0], null);
      await ch.close();
    });
  });

  describe('get', () => {
    it('traces the promise get: child of the producer, ended by ack, context available for the caller', async () => {
      const ch = traceChannel(await connection.createChannel());
      const q = queueName('get');
      await ch.assertQueue(q);
      ch.sendToQueue(q, Buffer.from('g'));
      const msg = await waitForGet(ch, q);
      const ctx = messageContext(msg);
      assert.ok(ctx);
      const spanId = withContext(ctx, () => currentSpan()?.spanContext().spanId);
      ch.ack(msg);
      const [consumer] = await spansNamed(collector, `process ${q}`, 1);
      const [producer] = await spansNamed(collector, `publish ${q}`, 1);
      assert.equal(consumer!.spanId, spanId);
      assert.equal(consumer!.parentSpanId, producer!.spanId);
      assert.equal(consumer!.attributes['messaging.operation.name'], 'get');
      assert.equal(consumer!.attributes['messaging.rabbitmq.message.settle'], 'ack');
      assert.equal(await ch.get(q), false, 'an empty queue still gives false');
      await ch.close();
    });
  });
});

describe('traceChannel (callback API)', () => {
  let connection: callbackApi.Connection;
  let collector: Collector;
  const q = unique('cb');

  before(async () => {
    connection = await new Promise((resolve, reject) => callbackApi.connect(AMQP_URL, (err, c) => (err ? reject(err) : resolve(c))));
    collector = new Collector().start();
  });
  after(async () => {
    collector.stop();
    await new Promise<void>((resolve) => {
      connection.createChannel((err, ch) => {
        if (err) return resolve();
        ch.deleteQueue(q, {}, () => ch.close(() => resolve()));
      });
    });
    await new Promise<void>((resolve) => connection.close(() => resolve()));
  });

  it('traces consume and get on a callback channel; return values stay the channel', async () => {
    const ch = await new Promise<callbackApi.Channel>((resolve, reject) =>
      connection.createChannel((err, c) => (err ? reject(err) : resolve(c))));
    assert.equal(traceChannel(ch), ch);
    await new Promise<void>((resolve, reject) => ch.assertQueue(q, {}, (err) => (err ? reject(err) : resolve())));

    let consumerTag = '';
    const consumed = new Promise<{ spanId: string | undefined; ackReturn: unknown }>((resolve) => {
      const returned = ch.consume(q, (msg) => {
        if (!msg) return;
        const spanId = currentSpan()?.spanContext().spanId;
        resolve({ spanId, ackReturn: ch.ack(msg) });
      }, {}, (_err, ok) => {
        consumerTag = ok.consumerTag;
      });
      assert.equal(returned as unknown, ch, 'consume returns the channel');
    });
    const root = startSpan('cb-root', { parent: null });
    withContext(contextWithSpan(root), () => ch.sendToQueue(q, Buffer.from('via callback api')));
    root.end();
    const { spanId, ackReturn } = await consumed;
    assert.equal(ackReturn, ch, 'ack returns the channel, as in amqplib\'s callback API');
    const [consumer] = await spansNamed(collector, `process ${q}`, 1);
    assert.equal(consumer!.spanId, spanId);
    assert.equal(consumer!.traceId, root.traceId);

    // get with a callback: it runs inside the message's span.
    await new Promise<void>((resolve) => ch.cancel(consumerTag, () => resolve()));
    const ch2 = await new Promise<callbackApi.Channel>((resolve, reject) =>
      connection.createChannel((err, c) => (err ? reject(err) : resolve(c))));
    traceChannel(ch2);
    ch2.sendToQueue(q, Buffer.from('for get'));
    const got = await waitForCallbackGet(ch2, q);
    assert.ok(got.spanId);
    ch2.ack(got.msg);
    const spans = await spansNamed(collector, `process ${q}`, 2);
    const viaGet = spans.find((s) => s.attributes['messaging.operation.name'] === 'get');
    assert.equal(viaGet?.spanId, got.spanId);
    assert.equal(viaGet?.attributes['messaging.rabbitmq.message.settle'], 'ack');
    await new Promise<void>((resolve) => ch.close(() => resolve()));
    await new Promise<void>((resolve) => ch2.close(() => resolve()));
  });

  it('traces a callback-API confirm channel: the span ends at the confirm, the callback gets amqplib\'s arguments', async () => {
    const ch = await new Promise<callbackApi.ConfirmChannel>((resolve, reject) =>
      connection.createConfirmChannel((err, c) => (err ? reject(err) : resolve(c))));
    traceChannel(ch);
    const args = await new Promise<unknown[]>((resolve) => {
      const returned = ch.sendToQueue(q, Buffer.from('confirmed'), { messageId: 'cb-confirm' }, (...a: unknown[]) => resolve(a));
      assert.equal(returned, true);
    });
    assert.deepEqual(args, [null]);
    const spans = await spansNamed(collector, `publish ${q}`, 1);
    const span = spans.find((s) => s.attributes['messaging.message.id'] === 'cb-confirm');
    assert.equal(span?.attributes['messaging.rabbitmq.message.confirm'], 'ack');
    await new Promise<void>((resolve) => ch.close(() => resolve()));
  });

  it('counts nothing as an error', () => {
    assert.equal(amqpStats().errors, 0);
  });
});

async function waitForGet(ch: Channel, q: string): Promise<GetMessage> {
  for (let i = 0; i < 200; i++) {
    const msg = await ch.get(q);
    if (msg) return msg;
    await delay(10);
  }
  throw new Error(`no message on ${q}`);
}

async function waitForCallbackGet(ch: callbackApi.Channel, q: string): Promise<{ msg: GetMessage; spanId: string | undefined }> {
  for (let i = 0; i < 200; i++) {
    const got = await new Promise<{ msg: GetMessage; spanId: string | undefined } | false>((resolve, reject) =>
      ch.get(q, {}, (err, msg) => (err ? reject(err) : resolve(msg ? { msg, spanId: currentSpan()?.spanContext().spanId } : false))));
    if (got) return got;
    await delay(10);
  }
  throw new Error(`no message on ${q}`);
}
