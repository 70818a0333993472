import assert from 'node:assert/strict';
import { createHook } from 'node:async_hooks';
import { after, before, beforeEach, describe, it } from 'node:test';
import type { ChannelModel, ConsumeMessage } from 'amqplib';
import { Collector } from '@cyb/core';
import { amqpStats, traceChannel } from '@cyb/amqp';
import { allSpans, cleanup, connect, delay, spansNamed, unique, waitFor } from './helpers.js';

describe('span lifetimes: confirms, closes, timeouts, caps', () => {
  let connection: ChannelModel;
  let collector: Collector;
  const queues: string[] = [];

  before(async () => {
    connection = await connect();
    collector = new Collector({ maxTraces: 5000 }).start();
  });
  beforeEach(() => collector.clear());
  after(async () => {
    collector.stop();
    await cleanup(connection, queues);
    await connection.close();
  });

  async function assertQueue(what: string, args?: Record<string, unknown>): Promise<string> {
    const q = unique(what);
    queues.push(q);
    const ch = await connection.createChannel();
    await ch.assertQueue(q, { arguments: args });
    await ch.close();
    return q;
  }

  describe('confirm channel', () => {
    it('ends the publish span at the broker\'s ack, and a nack marks it as an error; callbacks get amqplib\'s arguments', async () => {
      // One message fits; the broker nacks the next one instead of queueing it.
      const q = await assertQueue('confirm', { 'x-max-length': 1, 'x-overflow': 'reject-publish' });
      const ch = traceChannel(await connection.createConfirmChannel());
      const outcomes: unknown[][] = [];
      const first = new Promise<void>((resolve) => {
        const ok = ch.sendToQueue(q, Buffer.from('1'), { messageId: 'c1' }, (...args: unknown[]) => {
          outcomes.push(args);
          resolve();
        });
        assert.equal(ok, true);
      });
      assert.equal(allSpans(collector).length, 0, 'the span is still open until the confirm');
      await first;
      const second = new Promise<void>((resolve) => {
        ch.publish('', q, Buffer.from('2'), { messageId: 'c2' }, (...args: unknown[]) => {
          outcomes.push(args);
          resolve();
        });
      });
      await second;
      assert.deepEqual(outcomes[0], [null]);
      assert.ok(outcomes[1]![0] instanceof Error);
      assert.equal((outcomes[1]![0] as Error).message, 'message nacked');

      const spans = await spansNamed(collector, `publish ${q}`, 2);
      const acked = spans.find((s) => s.attributes['messaging.message.id'] === 'c1')!;
      const nacked = spans.find((s) => s.attributes['messaging.message.id'] === 'c2')!;
      assert.equal(acked.status.code, 'unset');
      assert.equal(acked.attributes['messaging.rabbitmq.message.confirm'], 'ack');
      assert.equal(nacked.status.code, 'error');
      assert.equal(nacked.status.message, 'message nacked');
      assert.equal(nacked.attributes['messaging.rabbitmq.message.confirm'], 'nack');

      // Without a callback the confirm is still awaited, and waitForConfirms behaves as amqplib's.
      ch.sendToQueue(q, Buffer.from('3'), { messageId: 'c3' });
      await assert.rejects(ch.waitForConfirms(), /message nacked/);
      const [third] = await waitFor('c3 span', () => {
        const found = allSpans(collector).filter((s) => s.attributes['messaging.message.id'] === 'c3');
        return found.length === 1 ? found : undefined;
      });
      assert.equal(third!.status.code, 'error');
      await ch.close();
    });

    it('ends the open publish spans with an error when the broker closes the channel before confirming', async () => {
      const ch = traceChannel(await connection.createConfirmChannel());
      const errors: Error[] = [];
      ch.on('error', (err: Error) => errors.push(err));
      const missing = unique('no-such-exchange');
      const before = amqpStats().closedUnsettled;
      const callbackErr = await new Promise<unknown>((resolve) => {
        ch.publish(missing, 'rk', Buffer.from('x'), {}, (err: unknown) => resolve(err));
      });
      assert.ok(callbackErr instanceof Error);
      const [span] = await spansNamed(collector, `publish ${missing}`, 1);
      assert.equal(span!.status.code, 'error');
      assert.equal(span!.attributes['messaging.rabbitmq.message.confirm'], 'channel_closed');
      assert.equal(amqpStats().closedUnsettled, before + 1);
      assert.equal(errors.length, 1, 'the application still gets the channel error event');
      assert.match(errors[0]!.message, /NOT_FOUND/);
    });
    it('a publish refused on a closed confirm channel leaves no sweep timer behind', async () => {
      const q = await assertQueue('refused');
      const ch = traceChannel(await connection.createConfirmChannel());
      await ch.close();
      // The sweep timer is unref'd, so getActiveResourcesInfo() does not list it; async hooks see every
      // Timeout created during the refused publish and whether it was cleared.
      const created = new Set<number>();
      const live = new Set<number>();
      let recording = false;
      const hook = createHook({
        init(asyncId, type) {
          if (recording && type === 'Timeout') {
            created.add(asyncId);
            live.add(asyncId);
          }
        },
        destroy(asyncId) {
          live.delete(asyncId);
        },
      }).enable();
      let refused: unknown;
      try {
        recording = true;
        try {
          ch.sendToQueue(q, Buffer.from('x'), { messageId: 'refused' });
        } catch (err) {
          refused = err;
        } finally {
          recording = false;
        }
        await delay(20);
      } finally {
        hook.disable();
      }
      assert.ok(refused instanceof Error, 'amqplib still throws to the caller');
      assert.ok(created.size > 0, 'the publish did arm a timer, so the check below means something');
      assert.deepEqual([...live], [], 'every timer the refused publish armed has been cleared');
      const [span] = await spansNamed(collector, `publish ${q}`, 1);
      assert.equal(span!.status.code, 'error');
    });
  });

  describe('close mid-flight', () => {
    it('channel.close() ends every unsettled process span with an error', async () => {
      const q = await assertQueue('close-ch');
      const ch = traceChannel(await connection.createChannel(), { settleTimeoutMs: 300 });
      const received: ConsumeMessage[] = [];
      await ch.consume(q, (msg) => {
        if (msg) received.push(msg);
      });
      for (let i = 0; i < 5; i++) ch.sendToQueue(q, Buffer.from(String(i)));
      await waitFor('5 deliveries', () => received.length === 5);
      ch.ack(received[0]!);
      const before = amqpStats().closedUnsettled;
      await ch.close();
      const spans = await spansNamed(collector, `process ${q}`, 5);
      const closed = spans.filter((s) => s.attributes['messaging.rabbitmq.message.settle'] === 'channel_closed');
      assert.equal(closed.length, 4);
      for (const s of closed) {
        assert.equal(s.status.code, 'error');
        assert.equal(s.status.message, 'channel closed before the message was settled');
      }
      assert.equal(amqpStats().closedUnsettled, before + 4);
      // Settling after the close throws amqplib's error, and no span ends twice.
      assert.throws(() => ch.ack(received[1]!), (err: Error) => err.name === 'IllegalOperationError');
      // Nothing is left waiting: past the settle timeout, no span times out.
      const timeouts = amqpStats().settleTimeouts;
      await delay(400);
      assert.equal(amqpStats().settleTimeouts, timeouts);
      assert.equal(allSpans(collector).filter((s) => s.name === `process ${q}`).length, 5);
    });

    it('a connection closed mid-flight ends the open spans of all its channels', async () => {
      const own = await connect();
      const q = await assertQueue('close-conn');
      const a = traceChannel(await own.createChannel());
      const b = traceChannel(await own.createChannel());
      let count = 0;
      for (const ch of [a, b]) {
        await ch.consume(q, (msg) => {
          if (msg) count++;
        });
      }
      const publisher = traceChannel(await own.createChannel());
      for (let i = 0; i < 6; i++) publisher.sendToQueue(q, Buffer.from(String(i)));
      await waitFor('6 deliveries', () => count === 6);
      await own.close();
      const spans = await spansNamed(collector, `process ${q}`, 6);
      assert.ok(spans.every((s) => s.status.code === 'error' && s.attributes['messaging.rabbitmq.message.settle'] === 'channel_closed'));
    });

    it('a broker-side channel error (ack of an unknown tag) ends the open spans, and the app still sees the error', async () => {
      const q = await assertQueue('close-broker');
      const ch = traceChannel(await connection.createChannel());
      const errors: Error[] = [];
      ch.on('error', (err: Error) => errors.push(err));
      const received: ConsumeMessage[] = [];
      await ch.consume(q, (msg) => {
        if (msg) received.push(msg);
      });
      ch.sendToQueue(q, Buffer.from('x'));
      await waitFor('a delivery', () => received.length === 1);
      const closed = new Promise((resolve) => ch.once('close', resolve));
      ch.ack({ ...received[0]!, fields: { ...received[0]!.fields, deliveryTag: 999 } });
      await closed;
      const [span] = await spansNamed(collector, `process ${q}`, 1);
      assert.equal(span!.status.code, 'error');
      assert.equal(span!.attributes['messaging.rabbitmq.message.settle'], 'channel_closed');
      assert.match(errors[0]!.message, /PRECONDITION_FAILED/);
    });
  });

  describe('bounds', () => {
    it('ends a span that waits longer than settleTimeoutMs, and a late ack changes nothing', async () => {
      const q = await assertQueue('timeout');
      const ch = traceChannel(await connection.createChannel(), { settleTimeoutMs: 150 });
      const received: ConsumeMessage[] = [];
      await ch.consume(q, (msg) => {
        if (msg) received.push(msg);
      });
      const before = amqpStats().settleTimeouts;
      for (let i = 0; i < 3; i++) ch.sendToQueue(q, Buffer.from(String(i)));
      const spans = await spansNamed(collector, `process ${q}`, 3, 3000);
      for (const s of spans) {
        assert.equal(s.status.code, 'error');
        assert.equal(s.status.message, 'message not settled within 150 ms');
        assert.equal(s.attributes['messaging.rabbitmq.message.settle'], 'timeout');
        assert.ok(s.durationUs >= 140_000);
      }
      assert.equal(amqpStats().settleTimeouts, before + 3);
      ch.ackAll();
      await delay(50);
      assert.equal(allSpans(collector).filter((s) => s.name === `process ${q}`).length, 3);
      await ch.close();
    });

    it('keeps at most maxPending spans waiting, ending the oldest first and counting the drops', async () => {
      const q = await assertQueue('cap');
      const ch = traceChannel(await connection.createChannel(), { maxPending: 2 });
      const received: ConsumeMessage[] = [];
      await ch.consume(q, (msg) => {
        if (msg) received.push(msg);
      });
      const before = amqpStats().pendingDropped;
      for (let i = 0; i < 5; i++) ch.sendToQueue(q, Buffer.from(String(i)), { messageId: `m${i}` });
      await waitFor('5 deliveries', () => received.length === 5);
      const dropped = await spansNamed(collector, `process ${q}`, 3);
      assert.deepEqual(dropped.map((s) => s.attributes['messaging.message.id']).sort(), ['m0', 'm1', 'm2']);
      assert.ok(dropped.every((s) => s.attributes['messaging.rabbitmq.message.settle'] === 'dropped'));
      assert.equal(amqpStats().pendingDropped, before + 3);
      ch.ackAll();
      const all = await spansNamed(collector, `process ${q}`, 5);
      const acked = all.filter((s) => s.attributes['messaging.rabbitmq.message.settle'] === 'ack');
      assert.deepEqual(acked.map((s) => s.attributes['messaging.message.id']).sort(), ['m3', 'm4']);
      await ch.close();
    });
  });
});
