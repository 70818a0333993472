import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import { Collector, currentSpan, span, spanContextOf, startSpan } from '@cyb/core';
import { consumeStream, redisTracingStats, traceRedis, unwrapStreamFields, type StreamEntry } from '@cyb/redis';
import { cleanup, connect, delay, spanNamed, spansNamed, uniquePrefix, waitFor } from './helpers.js';

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-0[0-3]$/;

describe('streams', () => {
  const collector = new Collector({ maxSpansPerTrace: 200 });
  const prefix = uniquePrefix();
  let plain: Redis;
  let traced: Redis;

  before(async () => {
    collector.start();
    plain = await connect();
    traced = traceRedis(await connect());
  });
  after(async () => {
    collector.stop();
    await cleanup(plain, prefix);
    await plain.quit();
    await traced.quit();
  });
  beforeEach(() => collector.clear());

  describe('XADD through a traced client', () => {
    it('appends the trace fields to the entry and returns the id unchanged', async () => {
      const key = `${prefix}:append`;
      const id = await span('place order', {}, () => traced.xadd(key, '*', 'orderId', '42', 'note', 'x'));
      assert.match(String(id), /^\d+-\d+$/);
      const [[readId, fields]] = (await plain.xrange(key, '-', '+')) as [string, string[]][];
      assert.equal(readId, id);
      assert.deepEqual(fields.slice(0, 4), ['orderId', '42', 'note', 'x']);
      const names = fields.filter((_, i) => i % 2 === 0);
      assert.deepEqual(names.slice(2).sort(), ['b3', 'traceparent']);
      const send = await spanNamed(collector, `send ${key}`);
      const root = await spanNamed(collector, 'place order');
      assert.equal(send.kind, 'producer');
      assert.equal(send.parentSpanId, root.spanId);
      assert.equal(send.attributes['messaging.system'], 'redis');
      assert.equal(send.attributes['messaging.destination.name'], key);
      assert.equal(send.attributes['messaging.operation.type'], 'send');
      assert.equal(send.attributes['messaging.message.id'], id);
      // The entry carries the PRODUCER span's own context, so a consumer becomes its child.
      const traceparent = fields[fields.indexOf('traceparent') + 1]!;
      const [, traceId, spanId] = TRACEPARENT.exec(traceparent)!;
      assert.equal(traceId, send.traceId);
      assert.equal(spanId, send.spanId);
    });

    it('starts a new trace for an XADD outside any span', async () => {
      const key = `${prefix}:root`;
      await traced.xadd(key, '*', 'a', '1');
      const send = await spanNamed(collector, `send ${key}`);
      assert.equal(send.parentSpanId, undefined);
    });

    it('handles NOMKSTREAM, MAXLEN ~ with LIMIT, MINID and explicit ids', async () => {
      const key = `${prefix}:options`;
      await traced.xadd(key, 'MAXLEN', '~', '1000', 'LIMIT', '10', '*', 'n', '1');
      await traced.xadd(key, 'NOMKSTREAM', 'MINID', '=', '0', '*', 'n', '2');
      await traced.xadd(key, 'NOMKSTREAM', '99999999999999-1', 'n', '3');
      const entries = (await plain.xrange(key, '-', '+')) as [string, string[]][];
      assert.equal(entries.length, 3);
      for (const [, fields] of entries) {
        assert.equal(fields[0], 'n');
        assert.ok(fields.includes('traceparent'), `trace fields in ${fields.join(',')}`);
        assert.equal(fields.length, 6); // n, traceparent, b3
      }
      // NOMKSTREAM on a missing stream: nothing written, reply null, span ends without an id.
      const missing = `${prefix}:missing`;
      assert.equal(await traced.xadd(missing, 'NOMKSTREAM', '*', 'n', '1'), null);
      assert.equal(await plain.exists(missing), 0);
      const span = await spanNamed(collector, `send ${missing}`);
      assert.equal(span.attributes['messaging.message.id'], undefined);
    });

    it('leaves a malformed XADD as it was, so Redis rejects it with the same error', async () => {
      const key = `${prefix}:malformed`;
      const plainError = await plain.call('XADD', key, '*').then(() => undefined, (e: Error) => e.message);
      const tracedError = await traced.call('XADD', key, '*').then(() => undefined, (e: Error) => e.message);
      assert.ok(plainError);
      assert.equal(tracedError, plainError);
      const odd = await traced.call('XADD', key, '*', 'a', '1', 'b').then(() => undefined, (e: Error) => e.message);
      assert.equal(odd, plainError);
      assert.equal(await plain.exists(key), 0);
      const failed = await spansNamed(collector, `send ${key}`, 2);
      assert.ok(failed.every((s) => s.status.code === 'error'));
    });

    it('keeps trace fields the application wrote itself', async () => {
      const key = `${prefix}:own`;
      const own = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
      await span('own', {}, () => traced.xadd(key, '*', 'traceparent', own, 'v', '1'));
      const [[, fields]] = (await plain.xrange(key, '-', '+')) as [string, string[]][];
      assert.deepEqual(fields, ['traceparent', own, 'v', '1']);
      // In any letter case: a hand-written `TraceParent` is the application's context too.
      await span('own, capitalised', {}, () => traced.xadd(key, '*', 'TraceParent', own, 'v', '2'));
      const [, [, second]] = (await plain.xrange(key, '-', '+')) as [string, string[]][];
      assert.deepEqual(second, ['TraceParent', own, 'v', '2']);
    });

    it('tells trace fields from application fields whatever their case, and only those names', () => {
      const tp = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
      const list = [
        ['TraceParent', tp],
        ['X-B3-Sampled', '1'],
        ['b3', `0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-1`],
        // Same lengths and first letters as trace field names, but not theirs.
        ['tracepoints', 'a'],
        ['Bz', 'b'],
        ['x-b3-spanidx', 'c'],
        ['body', 'd'],
        ['traceparent-extra-long-name', 'e'],
        ['', 'f'],
      ].flat();
      const { fields, traceFields, context } = unwrapStreamFields(list);
      assert.deepEqual({ ...traceFields }, { traceparent: tp, 'x-b3-sampled': '1', b3: list[5] });
      assert.deepEqual(Object.keys(fields), ['tracepoints', 'Bz', 'x-b3-spanidx', 'body', 'traceparent-extra-long-name', '']);
      assert.equal(spanContextOf(context!)?.traceId, '0af7651916cd43dd8448eb211c80319c');
    });

    it('traces XADDs queued in pipelines, MULTI and auto-pipelining in the context they were queued in', async () => {
      const key = `${prefix}:pipelines`;
      const auto = traceRedis(plain.duplicate({ enableAutoPipelining: true }));
      try {
        const ids = await Promise.all([
          span('first', {}, () => auto.xadd(key, '*', 'n', 'first')),
          span('second', {}, () => auto.xadd(key, '*', 'n', 'second')),
        ]);
        assert.equal(ids.length, 2);
        await span('pipeline', {}, () => traced.pipeline().xadd(key, '*', 'n', 'pipeline').exec());
        const multi = await span('multi', {}, () => traced.multi().xadd(key, '*', 'n', 'multi').exec());
        const [[execError, multiId]] = multi as [[Error | null, string]];
        assert.equal(execError, null);
        assert.match(String(multiId), /^\d+-\d+$/);
        const entries = (await plain.xrange(key, '-', '+')) as [string, string[]][];
        assert.equal(entries.length, 4);
        for (const [, fields] of entries) {
          const name = fields[1]!;
          const root = await spanNamed(collector, name);
          const [, traceId] = TRACEPARENT.exec(fields[fields.indexOf('traceparent') + 1]!)!;
          assert.equal(traceId, root.traceId, `entry written in ${name} carries its trace`);
        }
      } finally {
        await auto.quit();
      }
    });
  });

  describe('consumeStream()', () => {
    it('runs the handler in a CONSUMER span that is a child of the producer span, without the trace fields', async () => {
      const key = `${prefix}:xread`;
      const seen: { entry: StreamEntry; spanId: string | undefined }[] = [];
      const consumer = consumeStream(plain, {
        streams: [key],
        block: 200,
        handler: (entry) => {
          seen.push({ entry, spanId: currentSpan()?.spanContext().spanId });
        },
      });
      try {
        await consumer.ready;
        const id = await span('request', {}, () => traced.xadd(key, '*', 'orderId', '7'));
        await waitFor('the entry', () => seen.length === 1);
        const [{ entry, spanId }] = seen as [(typeof seen)[0]];
        assert.equal(entry.id, id);
        assert.equal(entry.stream, key);
        assert.deepEqual({ ...entry.fields }, { orderId: '7' });
        assert.deepEqual(entry.fieldList, ['orderId', '7']);
        assert.match(entry.traceFields.traceparent!, TRACEPARENT);
        const process = await spanNamed(collector, `process ${key}`);
        const send = await spanNamed(collector, `send ${key}`);
        const root = await spanNamed(collector, 'request');
        assert.equal(spanId, process.spanId, 'the handler runs inside the CONSUMER span');
        assert.equal(process.kind, 'consumer');
        assert.equal(process.parentSpanId, send.spanId);
        assert.equal(send.parentSpanId, root.spanId);
        assert.equal(new Set([process.traceId, send.traceId, root.traceId]).size, 1);
        assert.equal(process.attributes['messaging.message.id'], id);
        assert.equal(process.attributes['messaging.operation.type'], 'process');
      } finally {
        await consumer.stop();
      }
    });

    it('reads on past each batch: 250 entries from 250 traces, each handled once in its own trace', async () => {
      const key = `${prefix}:many`;
      const seen = new Map<string, string>();
      const consumer = consumeStream(plain, {
        streams: [key],
        block: 200,
        count: 20,
        handler: (entry) => {
          assert.equal(seen.has(entry.id), false, `entry ${entry.id} handled twice`);
          seen.set(entry.id, currentSpan()!.spanContext().traceId);
        },
      });
      try {
        await consumer.ready;
        const ids = await Promise.all(Array.from({ length: 250 }, () => traced.xadd(key, '*', 'n', '1')));
        await waitFor('250 entries', () => seen.size === 250);
        assert.deepEqual([...seen.keys()], ids);
        const sends = await spansNamed(collector, `send ${key}`, 250);
        const processes = await spansNamed(collector, `process ${key}`, 250);
        const sendById = new Map(sends.map((s) => [s.spanId, s]));
        for (const p of processes) {
          const send = sendById.get(p.parentSpanId!);
          assert.ok(send, 'each CONSUMER span has its own PRODUCER span as parent');
          assert.equal(p.attributes['messaging.message.id'], send.attributes['messaging.message.id']);
        }
        assert.equal(new Set(processes.map((p) => p.parentSpanId)).size, 250);
        assert.equal(new Set(seen.values()).size, 250);
      } finally {
        await consumer.stop();
      }
    });

    it('lets a group member go through its pending entries from an id, then on to new ones', async () => {
      const key = `${prefix}:pending`;
      const group = 'resume';
      const first: string[] = [];
      const unacked = consumeStream(plain, {
        streams: [key],
        group,
        consumer: 'm',
        createGroup: true,
        ack: false,
        block: 100,
        handler: (e) => void first.push(e.id),
      });
      await unacked.ready;
      const old = [await traced.xadd(key, '*', 'n', '1'), await traced.xadd(key, '*', 'n', '2')];
      await waitFor('two entries', () => first.length === 2);
      await unacked.stop();
      const second: string[] = [];
      const resumed = consumeStream(plain, { streams: { [key]: '0' }, group, consumer: 'm', count: 1, block: 100, handler: (e) => void second.push(e.id) });
      try {
        await resumed.ready;
        await waitFor('the pending entries', () => second.length === 2);
        const fresh = await traced.xadd(key, '*', 'n', '3');
        await waitFor('the new entry', () => second.length === 3);
        assert.deepEqual(second, [...old, fresh]);
        await waitFor('every entry acknowledged', async () => ((await plain.xpending(key, group)) as [number])[0] === 0);
      } finally {
        await resumed.stop();
      }
    });

    it('reads RESP3 replies mapped as objects (ioredis 6 replyMapping: resp3)', async () => {
      const key = `${prefix}:resp3`;
      const seen: StreamEntry[] = [];
      const resp3 = plain.duplicate({ protocol: 3, replyMapping: 'resp3' });
      const consumer = consumeStream(resp3, { streams: [key], block: 100, handler: (e) => void seen.push(e) });
      try {
        await consumer.ready;
        await span('resp3', {}, () => traced.xadd(key, '*', 'k', 'v'));
        await waitFor('the entry', () => seen.length === 1);
        assert.deepEqual({ ...seen[0]!.fields }, { k: 'v' });
        assert.equal((await spanNamed(collector, `process ${key}`)).traceId, (await spanNamed(collector, 'resp3')).traceId);
      } finally {
        await consumer.stop();
        resp3.disconnect();
      }
    });

    it('starts a new trace for entries written by an untraced producer', async () => {
      const key = `${prefix}:untraced`;
      const seen: StreamEntry[] = [];
      const consumer = consumeStream(plain, { streams: [key], block: 200, handler: (e) => void seen.push(e) });
      try {
        await consumer.ready;
        await span('unrelated', {}, () => plain.xadd(key, '*', 'k', 'v'));
        await waitFor('the entry', () => seen.length === 1);
        assert.deepEqual({ ...seen[0]!.fields }, { k: 'v' });
        assert.deepEqual({ ...seen[0]!.traceFields }, {});
        const process = await spanNamed(collector, `process ${key}`);
        const unrelated = await spanNamed(collector, 'unrelated');
        assert.equal(process.parentSpanId, undefined);
        assert.notEqual(process.traceId, unrelated.traceId);
      } finally {
        await consumer.stop();
      }
    });

    it('shares a consumer group between two members, acknowledges, and keeps every trace intact', async () => {
      const key = `${prefix}:group`;
      const group = 'billing';
      const handled: { member: string; entry: StreamEntry; traceId: string }[] = [];
      const member = (name: string) =>
        consumeStream(plain, {
          streams: [key],
          group,
          consumer: name,
          createGroup: true,
          block: 100,
          count: 2,
          handler: async (entry) => {
            await delay(2);
            handled.push({ member: name, entry, traceId: currentSpan()!.spanContext().traceId });
          },
        });
      const a = member('a');
      const b = member('b');
      try {
        await Promise.all([a.ready, b.ready]);
        const ids = [];
        for (let i = 0; i < 10; i++) ids.push(await span(`order-${i}`, {}, () => traced.xadd(key, '*', 'i', String(i))));
        await waitFor('ten entries', () => handled.length === 10);
        assert.deepEqual(handled.map((h) => h.entry.id).sort(), [...ids].sort());
        for (const h of handled) {
          const root = await spanNamed(collector, `order-${h.entry.fields.i}`);
          assert.equal(h.traceId, root.traceId);
        }
        const processes = await spansNamed(collector, `process ${key}`, 10);
        assert.ok(processes.every((p) => p.attributes['messaging.consumer.group.name'] === group && p.parentSpanId !== undefined));
        await waitFor('every entry acknowledged', async () => ((await plain.xpending(key, group)) as [number])[0] === 0);
      } finally {
        await Promise.all([a.stop(), b.stop()]);
      }
    });

    it('records a handler error on the span, reports it, leaves the entry pending and goes on', async () => {
      const key = `${prefix}:errors`;
      const group = 'g';
      const errors: unknown[] = [];
      const boom = new Error('handler failed');
      const ok: string[] = [];
      const consumer = consumeStream(plain, {
        streams: [key],
        group,
        createGroup: true,
        block: 100,
        handler: (entry) => {
          if (entry.fields.fail === 'yes') throw boom;
          ok.push(entry.id);
        },
        onError: (error) => errors.push(error),
      });
      try {
        await consumer.ready;
        const bad = await traced.xadd(key, '*', 'fail', 'yes');
        const good = await traced.xadd(key, '*', 'fail', 'no');
        await waitFor('the good entry', () => ok.length === 1);
        assert.deepEqual(ok, [good]);
        assert.deepEqual(errors, [boom]);
        const processes = await spansNamed(collector, `process ${key}`, 2);
        const failed = processes.find((p) => p.attributes['messaging.message.id'] === bad)!;
        assert.equal(failed.status.code, 'error');
        assert.equal(failed.status.message, 'handler failed');
        await delay(50);
        const pending = (await plain.xpending(key, group, '-', '+', 10)) as [string][];
        assert.deepEqual(pending.map((p) => p[0]), [bad]);
        assert.ok(redisTracingStats().handlerErrors >= 1);
      } finally {
        await consumer.stop();
      }
    });

    it('reads Buffers with buffers: true, binary values intact', async () => {
      const key = `${prefix}:buffers`;
      const binary = Buffer.from([0, 255, 10, 0xc3, 0x28, 1]);
      const seen: StreamEntry<Buffer>[] = [];
      const consumer = consumeStream(plain, { streams: [key], block: 100, buffers: true, handler: (e) => void seen.push(e) });
      try {
        await consumer.ready;
        await span('binary', {}, () => traced.xadd(key, '*', 'blob', binary));
        await waitFor('the entry', () => seen.length === 1);
        assert.ok(Buffer.isBuffer(seen[0]!.fields.blob));
        assert.deepEqual(seen[0]!.fields.blob, binary);
        const process = await spanNamed(collector, `process ${key}`);
        const root = await spanNamed(collector, 'binary');
        assert.equal(process.traceId, root.traceId);
      } finally {
        await consumer.stop();
      }
    });

    it('treats hostile trace fields and __proto__ field names as data, with a new trace', async () => {
      const key = `${prefix}:hostile`;
      const seen: StreamEntry[] = [];
      const consumer = consumeStream(plain, { streams: [key], block: 100, handler: (e) => void seen.push(e) });
      try {
        await consumer.ready;
        await plain.xadd(key, '*', '__proto__', '{"polluted":true}', 'constructor', 'x', 'traceparent', 'garbage', 'b3', 'x'.repeat(10000));
        await waitFor('the entry', () => seen.length === 1);
        const entry = seen[0]!;
        assert.equal(Object.getPrototypeOf(entry.fields), null);
        assert.equal(entry.fields['__proto__'], '{"polluted":true}');
        assert.equal(entry.fields.constructor, 'x');
        assert.equal(({} as Record<string, unknown>).polluted, undefined);
        assert.equal(entry.traceFields.traceparent, 'garbage');
        assert.equal(entry.context, undefined);
        const process = await spanNamed(collector, `process ${key}`);
        assert.equal(process.parentSpanId, undefined);
      } finally {
        await consumer.stop();
      }
    });

    it('stops promptly while a read is blocked, and closes its connection', async () => {
      const key = `${prefix}:stop`;
      const name = `${prefix}-consumer`.replace(/:/g, '-');
      const owner = await connect();
      const consumer = consumeStream(owner.duplicate({ connectionName: name }), { streams: [key], block: 10000, handler: () => undefined });
      try {
        await consumer.ready;
        await delay(50);
        const list = await plain.client('LIST');
        assert.ok(String(list).includes(`name=${name}`), 'the consumer has its own connection');
        const started = Date.now();
        const stopping = consumer.stop();
        assert.equal(consumer.stop(), stopping);
        await stopping;
        assert.ok(Date.now() - started < 1000, `stopped in ${Date.now() - started} ms`);
        await waitFor('the connection to close', async () => !String(await plain.client('LIST')).includes(`name=${name}`));
      } finally {
        await consumer.stop();
        await owner.quit();
      }
    });
  });

  describe('unwrapStreamFields()', () => {
    it('extracts the producer context for hand-written read loops', async () => {
      const key = `${prefix}:manual`;
      await span('manual', {}, () => traced.xadd(key, '*', 'a', '1'));
      const [[, list]] = (await plain.xrange(key, '-', '+')) as [string, string[]][];
      const { fields, context } = unwrapStreamFields(list);
      assert.deepEqual({ ...fields }, { a: '1' });
      const child = startSpan('child', { parent: context! });
      child.end();
      const send = await spanNamed(collector, `send ${key}`);
      assert.equal(child.parentSpanId, send.spanId);
      assert.equal(child.traceId, send.traceId);
    });

    it('reads Buffer replies by their UTF-8 bytes, never through a value of their own', async () => {
      const key = `${prefix}:manual-buffers`;
      await span('manual buffers', {}, () => traced.xadd(key, '*', 'prénom', 'Zoë'));
      const [[, list]] = (await plain.xrangeBuffer(key, '-', '+')) as unknown as [Buffer, Buffer[]][];
      const { fields, fieldList, traceFields, context } = unwrapStreamFields(list);
      assert.deepEqual(Object.keys(fields), ['prénom']);
      assert.equal(fields['prénom']!.toString(), 'Zoë');
      assert.equal(fieldList.length, 2);
      const send = await spanNamed(collector, `send ${key}`);
      assert.equal(spanContextOf(context!)?.spanId, send.spanId);
      assert.ok(traceFields.traceparent!.startsWith(`00-${send.traceId}-${send.spanId}-`));

      // A name whose own toString lies is still read by its bytes; a plain Uint8Array goes through String().
      const lying = Buffer.from('traceparent');
      Object.defineProperty(lying, 'toString', { value: () => 'payload' });
      const bytes = new Uint8Array([0x61]);
      const odd = unwrapStreamFields([lying, Buffer.from(traceFields.traceparent!), bytes, Buffer.from('x')] as unknown as Buffer[]);
      assert.equal(spanContextOf(odd.context!)?.spanId, send.spanId);
      assert.deepEqual(Object.keys(odd.fields), [String(bytes)]);
    });

    it('never throws on odd input', () => {
      for (const input of [null, undefined, [], ['lonely'], [Buffer.from('b3'), Buffer.from('not-b3')]] as unknown as string[][]) {
        const result = unwrapStreamFields(input);
        assert.equal(result.context, undefined);
      }
    });
  });
});
