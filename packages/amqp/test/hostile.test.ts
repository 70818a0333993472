import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { after, before, beforeEach, describe, it } from 'node:test';
import type { Channel, ChannelModel, ConsumeMessage } from 'amqplib';
import { Collector, contextWithSpan, startSpan, withContext } from '@cyb/core';
import { amqpStats, traceChannel } from '@cyb/amqp';
import { AMQP_URL, cleanup, connect, spansNamed, unique, waitFor } from './helpers.js';

const VALID = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';

// What other producers (or attackers) may put on the wire, each published by a plain amqplib channel.
const HOSTILE: { name: string; headers?: Record<string, unknown>; malformed: boolean }[] = [
  { name: 'no headers', malformed: false },
  { name: 'empty table', headers: {}, malformed: false },
  { name: 'garbage traceparent', headers: { traceparent: 'garbage' }, malformed: true },
  { name: 'all-zero trace id', headers: { traceparent: '00-00000000000000000000000000000000-b7ad6b7169203331-01' }, malformed: true },
  { name: 'upper-case hex', headers: { traceparent: VALID.toUpperCase() }, malformed: true },
  { name: 'version ff', headers: { traceparent: VALID.replace(/^00/, 'ff') }, malformed: true },
  { name: 'numeric traceparent', headers: { traceparent: 42 }, malformed: true },
  { name: 'table as traceparent', headers: { traceparent: { traceparent: VALID } }, malformed: true },
  { name: 'duplicated traceparent', headers: { traceparent: [VALID, VALID.replace('b7ad', 'c7ad')] }, malformed: true },
  { name: 'invalid UTF-8 bytes', headers: { traceparent: Buffer.from([0xff, 0xfe, 0x00, 0x2d, 0xc3]) }, malformed: true },
  { name: 'oversized traceparent', headers: { traceparent: `${VALID}${'x'.repeat(20_000)}` }, malformed: true },
  { name: 'garbage b3', headers: { b3: 'not-b3-at-all' }, malformed: true },
  { name: 'bad X-B3 multi', headers: { 'X-B3-TraceId': 'zzz', 'X-B3-SpanId': '1' }, malformed: true },
  { name: 'baggage only, hostile', headers: { baggage: '%%%,,=;;,k=%zz' }, malformed: false },
  // A header named __proto__ becomes the decoded table's prototype in amqplib: never an own key.
  { name: '__proto__ table', headers: JSON.parse(`{"__proto__": {"traceparent": "${VALID}"}}`) as Record<string, unknown>, malformed: false },
];

/** A decoded table's own entries and, when amqplib swapped it, its prototype's: comparable across two decodings. */
function tableShape(table: unknown): unknown {
  if (table === null || typeof table !== 'object') return table;
  const proto = Object.getPrototypeOf(table) as object | null;
  return { own: { ...table }, proto: proto === Object.prototype ? 'Object.prototype' : { ...proto } };
}

describe('hostile and missing headers', () => {
  let connection: ChannelModel;
  let raw: Channel;
  let collector: Collector;
  const queues: string[] = [];
  const exchanges: string[] = [];

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

  it('start a new trace, are counted, and the message reaches the callback exactly as an untraced consumer sees it', async () => {
    // A fanout delivers each message twice: to a plain consumer and to a traced one.
    const x = unique('hostile');
    const plainQ = unique('hostile-plain');
    const tracedQ = unique('hostile-traced');
    exchanges.push(x);
    queues.push(plainQ, tracedQ);
    await raw.assertExchange(x, 'fanout', { autoDelete: false });
    for (const q of [plainQ, tracedQ]) {
      await raw.assertQueue(q);
      await raw.bindQueue(q, x, '');
    }
    const plain: ConsumeMessage[] = [];
    const traced: ConsumeMessage[] = [];
    const plainCh = await connection.createChannel();
    await plainCh.consume(plainQ, (msg) => {
      if (msg) plain.push(msg);
    }, { noAck: true });
    const ch = traceChannel(await connection.createChannel());
    await ch.consume(tracedQ, (msg) => {
      if (!msg) return;
      traced.push(msg);
      ch.ack(msg);
    });

    const before = amqpStats();
    for (const [i, h] of HOSTILE.entries()) {
      raw.publish(x, '', Buffer.from(h.name), h.headers === undefined ? { messageId: String(i) } : { messageId: String(i), headers: h.headers });
    }
    await waitFor('every hostile message on both sides', () => plain.length === HOSTILE.length && traced.length === HOSTILE.length);
    const spans = await spansNamed(collector, `process ${tracedQ}`, HOSTILE.length);
    const now = amqpStats();

    for (const [i, h] of HOSTILE.entries()) {
      const p = plain.find((m) => m.properties.messageId === String(i))!;
      const t = traced.find((m) => m.properties.messageId === String(i))!;
      assert.deepEqual(t.content, p.content, h.name);
      assert.deepEqual({ ...t.properties, headers: null }, { ...p.properties, headers: null }, `${h.name}: properties untouched`);
      assert.deepEqual(tableShape(t.properties.headers), tableShape(p.properties.headers), `${h.name}: headers untouched`);
      const span = spans.find((s) => s.attributes['messaging.message.id'] === String(i))!;
      assert.equal(span.parentSpanId, undefined, `${h.name}: a new trace`);
      assert.notEqual(span.traceId, '0af7651916cd43dd8448eb211c80319c', h.name);
      assert.match(span.traceId, /^[0-9a-f]{32}$/);
      assert.equal(span.attributes['messaging.rabbitmq.message.settle'], 'ack');
    }
    assert.equal(new Set(spans.map((s) => s.traceId)).size, HOSTILE.length, 'one new trace each');
    assert.equal(now.malformedContext - before.malformedContext, HOSTILE.filter((h) => h.malformed).length);
    assert.equal(now.missingContext - before.missingContext, HOSTILE.filter((h) => !h.malformed).length);
    assert.equal(now.errors, before.errors, 'no tracing failure');
    await plainCh.close();
    await ch.close();
  });

  it('odd caller headers and options reach the wire as they would untraced', async () => {
    const q = unique('odd-publish');
    queues.push(q);
    await raw.assertQueue(q);
    const ch = traceChannel(await connection.createChannel());
    const make = (): Record<string, unknown> => ({
      headers: JSON.parse('{"__proto__": "literal", "x-n": 5, "x-list": ["a", 1], "x-undef": null}') as Record<string, unknown>,
      CC: ['nobody'],
      expiration: 60_000,
      contentType: 'text/plain',
    });
    const root = startSpan('odd', { parent: null });
    withContext(contextWithSpan(root), () => {
      raw.sendToQueue(q, Buffer.from('plain'), make());
      ch.sendToQueue(q, Buffer.from('traced'), make());
    });
    root.end();
    const got: ConsumeMessage[] = [];
    await raw.consume(q, (msg) => {
      if (msg) got.push(msg);
    }, { noAck: true });
    await waitFor('both messages', () => got.length === 2);
    const [plain, traced] = [got.find((m) => m.content.toString() === 'plain')!, got.find((m) => m.content.toString() === 'traced')!];
    const { traceparent, b3, ...rest } = traced.properties.headers as Record<string, unknown>;
    assert.match(String(traceparent), new RegExp(`^00-${root.traceId}-`));
    assert.ok(b3);
    assert.deepEqual(rest, plain.properties.headers);
    assert.deepEqual({ ...traced.properties, headers: undefined }, { ...plain.properties, headers: undefined });
    await ch.close();
  });

  it('a consumer that throws synchronously: the span records it, amqplib gets the very same error', async () => {
    const q = unique('sync-throw');
    queues.push(q);
    await raw.assertQueue(q);
    const ch = traceChannel(await connection.createChannel());
    const boom = new Error('sync boom');
    const errors: unknown[] = [];
    ch.on('error', (err) => errors.push(err));
    const closed = new Promise((resolve) => ch.once('close', resolve));
    await ch.consume(q, () => {
      throw boom;
    });
    raw.sendToQueue(q, Buffer.from('x'));
    await closed;
    assert.equal(errors[0], boom, 'amqplib closed the channel with the handler\'s own error');
    const [span] = await spansNamed(collector, `process ${q}`, 1);
    assert.equal(span!.status.code, 'error');
    assert.equal(span!.status.message, 'sync boom');
  });

  it('an async consumer that rejects: recorded on the span, and the rejection stays unhandled with the same error', async () => {
    const q = unique('async-reject');
    queues.push(q);
    await raw.assertQueue(q);
    // In a process of its own: the test runner treats an unhandled rejection as a failure.
    const child = `
      import * as amqplib from 'amqplib';
      import { Collector } from '@cyb/core';
      import { traceChannel } from '@cyb/amqp';
      const collector = new Collector().start();
      const connection = await amqplib.connect(${JSON.stringify(AMQP_URL)});
      const ch = traceChannel(await connection.createChannel());
      const boom = { noAck: new Error('noAck boom'), ack: new Error('ack boom') };
      const reasons = [];
      process.on('unhandledRejection', async (reason) => {
        reasons.push(reason);
        if (reasons.length < 2) return;
        await ch.close();
        const spans = collector.traces().flatMap((t) => t.spans).filter((s) => s.kind === 'consumer');
        console.log(JSON.stringify({
          same: reasons.includes(boom.noAck) && reasons.includes(boom.ack),
          spans: spans.map((s) => ({ id: s.attributes['messaging.message.id'], status: s.status, settle: s.attributes['messaging.rabbitmq.message.settle'] })),
        }));
        await connection.close();
      });
      await ch.consume(${JSON.stringify(q)}, async (msg) => {
        await new Promise((r) => setTimeout(r, 5));
        throw boom[msg.properties.messageId];
      }, { noAck: false });
      const q2 = ${JSON.stringify(q)} + '-noack';
      await ch.assertQueue(q2, { autoDelete: true });
      await ch.consume(q2, async (msg) => {
        await new Promise((r) => setTimeout(r, 5));
        throw boom[msg.properties.messageId];
      }, { noAck: true });
      ch.sendToQueue(${JSON.stringify(q)}, Buffer.from('x'), { messageId: 'ack' });
      ch.sendToQueue(q2, Buffer.from('x'), { messageId: 'noAck' });
    `;
    const cwd = fileURLToPath(new URL('../..', import.meta.url));
    const out = await new Promise<string>((resolve, reject) => {
      execFile(process.execPath, ['--input-type=module', '-e', child], { cwd, timeout: 15_000 }, (err, stdout, stderr) =>
        err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout));
    });
    const result = JSON.parse(out.trim()) as { same: boolean; spans: { id: string; status: { code: string; message?: string }; settle: string }[] };
    assert.equal(result.same, true, 'unhandledRejection saw the handler\'s own error objects');
    const ack = result.spans.find((s) => s.id === 'ack')!;
    const noAck = result.spans.find((s) => s.id === 'noAck')!;
    assert.deepEqual(noAck.status, { code: 'error', message: 'noAck boom' });
    assert.equal(noAck.settle, 'auto');
    assert.deepEqual(ack.status, { code: 'error', message: 'ack boom' }, 'the handler\'s error, not the later close, is the status');
    assert.equal(ack.settle, 'channel_closed');
  });
});
