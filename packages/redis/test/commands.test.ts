import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import { Collector, span } from '@cyb/core';
import { isTraced, traceRedis, untraceRedis } from '@cyb/redis';
import { allSpans, cleanup, connect, delay, spanNamed, spansNamed, uniquePrefix } from './helpers.js';

describe('command spans', () => {
  const collector = new Collector({ maxSpansPerTrace: 500 });
  const prefix = uniquePrefix();
  let plain: Redis;

  before(async () => {
    collector.start();
    plain = await connect();
  });
  after(async () => {
    collector.stop();
    await cleanup(plain, prefix);
    await plain.quit();
  });
  beforeEach(() => collector.clear());

  it('are off by default', async () => {
    const client = traceRedis(await connect());
    try {
      await span('work', {}, async () => {
        await client.set(`${prefix}:off`, '1');
        await client.get(`${prefix}:off`);
      });
      await spanNamed(collector, 'work');
      await delay(5);
      assert.deepEqual(allSpans(collector).map((s) => s.name), ['work']);
    } finally {
      await client.quit();
    }
  });

  it('give one CLIENT span per command with db attributes and never a value or key', async () => {
    const client = traceRedis(await connect(), { commandSpans: true });
    const key = `${prefix}:secret-key-name`;
    const secret = 'hunter2-secret-value';
    try {
      await span('work', {}, async () => {
        await client.set(key, secret);
        assert.equal(await client.get(key), secret);
        await client.hset(`${key}:h`, { field: secret });
        await client.call('ECHO', secret);
      });
      const root = await spanNamed(collector, 'work');
      const commands = allSpans(collector).filter((s) => s.kind === 'client');
      assert.deepEqual(commands.map((s) => s.name), ['SET', 'GET', 'HSET', 'ECHO']);
      for (const s of commands) {
        assert.equal(s.parentSpanId, root.spanId);
        assert.equal(s.attributes['db.system.name'], 'redis');
        assert.equal(s.attributes['db.operation.name'], s.name);
        assert.equal(s.attributes['db.namespace'], '0');
        assert.equal(s.attributes['server.address'], '127.0.0.1');
        assert.equal(s.attributes['server.port'], 6379);
      }
      const text = JSON.stringify(allSpans(collector));
      assert.ok(!text.includes(secret), 'no argument value in any span');
      assert.ok(!text.includes('secret-key-name'), 'no key in any span');
    } finally {
      await client.quit();
    }
  });

  it('record a failed command as an error and leave its rejection as it was', async () => {
    const client = traceRedis(await connect(), { commandSpans: true });
    const key = `${prefix}:not-a-number`;
    try {
      await plain.set(key, 'abc');
      const plainError = await plain.incr(key).catch((e: Error) => e);
      const tracedError = await span('work', {}, () => client.incr(key)).catch((e: Error) => e);
      assert.ok(tracedError instanceof Error);
      assert.equal(tracedError.constructor, (plainError as Error).constructor);
      assert.equal(tracedError.message, (plainError as Error).message);
      const incr = await spanNamed(collector, 'INCR');
      assert.equal(incr.status.code, 'error');
    } finally {
      await client.quit();
    }
  });

  it('record commands outside any span only with rootCommandSpans', async () => {
    const quiet = traceRedis(await connect(), { commandSpans: true });
    const loud = traceRedis(await connect(), { commandSpans: true, rootCommandSpans: true });
    try {
      await quiet.ping();
      await loud.ping();
      const pings = await spansNamed(collector, 'PING', 1);
      await delay(5);
      assert.equal(allSpans(collector).filter((s) => s.name === 'PING').length, 1);
      assert.equal(pings[0]!.parentSpanId, undefined);
    } finally {
      await quiet.quit();
      await loud.quit();
    }
  });

  it('put an XADD CLIENT span under its PRODUCER span, and trace pipelines per command', async () => {
    const client = traceRedis(await connect(), { commandSpans: true });
    const key = `${prefix}:stream`;
    try {
      await span('work', {}, async () => {
        await client.xadd(key, '*', 'a', '1');
        await client.pipeline().incr(`${key}:n`).incr(`${key}:n`).exec();
      });
      const send = await spanNamed(collector, `send ${key}`);
      const xadd = await spanNamed(collector, 'XADD');
      const root = await spanNamed(collector, 'work');
      assert.equal(xadd.parentSpanId, send.spanId);
      assert.equal(send.parentSpanId, root.spanId);
      const incrs = await spansNamed(collector, 'INCR', 2);
      assert.ok(incrs.every((s) => s.parentSpanId === root.spanId));
      // Outside any span the XADD still has its PRODUCER span, so its CLIENT span has a parent too.
      collector.clear();
      await client.xadd(key, '*', 'a', '2');
      const lone = await spanNamed(collector, 'XADD');
      assert.equal(lone.parentSpanId, (await spanNamed(collector, `send ${key}`)).spanId);
    } finally {
      await client.quit();
    }
  });

  it('keep every reply identical to an untraced client', async () => {
    const client = traceRedis(await connect(), { commandSpans: true });
    const key = `${prefix}:same`;
    try {
      const run = async (c: Redis, k: string) => [
        await c.set(k, 'v'),
        await c.get(k),
        await c.getBuffer(k),
        await c.del(k),
        await c.hset(`${k}:h`, 'f', '1'),
        await c.hgetall(`${k}:h`),
        await c.multi().incr(`${k}:n`).get(`${k}:n`).exec(),
        await new Promise((resolve) => c.get(k, (err, value) => resolve([err, value]))),
      ];
      const traced = await span('work', {}, () => run(client, `${key}:traced`));
      const untraced = await run(plain, `${key}:plain`);
      assert.deepEqual(traced, untraced);
    } finally {
      await client.quit();
    }
  });
});

describe('traceRedis() / untraceRedis()', () => {
  const collector = new Collector();
  before(() => collector.start());
  after(() => collector.stop());

  it('hooks only the instance, returns it, ignores a second call, and undoes everything', async () => {
    const client = await connect();
    const other = await connect();
    try {
      const proto = Object.getPrototypeOf(client) as Record<string, unknown>;
      const sendCommand = proto.sendCommand;
      assert.equal(traceRedis(client, { commandSpans: true }), client);
      assert.equal(isTraced(client), true);
      assert.equal(isTraced(other), false);
      assert.equal(proto.sendCommand, sendCommand, 'the prototype is untouched');
      assert.equal(traceRedis(client), client);
      untraceRedis(client);
      assert.equal(isTraced(client), false);
      for (const name of ['sendCommand', 'emit', 'pipeline', 'multi', 'duplicate']) {
        assert.equal(Object.hasOwn(client, name), false, `${name} restored`);
      }
      collector.clear();
      await span('after', {}, () => client.ping());
      assert.deepEqual(allSpans(collector).map((s) => s.name), ['after']);
    } finally {
      await client.quit();
      await other.quit();
    }
  });

  it('fails fast on what is not an ioredis client', () => {
    assert.throws(() => traceRedis({} as never), TypeError);
    assert.throws(() => traceRedis(null as never), TypeError);
  });
});
