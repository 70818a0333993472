// Redis goes away under traced clients: a server of our own restarted (the shared one is never
// touched), and our own connections killed on the shared server with CLIENT KILL. What the
// application sees must be what an untraced client sees; spans must end; nothing may stay behind.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis, type RedisOptions } from 'ioredis';
import { consumeStream, traceRedis } from '@cyb/redis';
import { withContext, contextWithSpan, startSpan, type SpanRecord } from '@cyb/core';
import {
  FailureWatch, REDIS_URL, SpanLedger, assertCensusBack, describeError, processListeners, resourceCensus, sleep,
  uniqueName, waitUntil,
} from './helpers.js';
import { ThrowawayRedis, freePort } from './services.js';

const CONNECTION_EVENTS = ['error', 'close', 'reconnecting', 'connect', 'ready', 'end'] as const;

/** Records what an application listening to a client's connection events would log. */
function watchEvents(client: Redis, into: string[]): void {
  for (const event of CONNECTION_EVENTS) {
    client.on(event, (arg: unknown) => void into.push(event === 'error' ? `error ${describeError(arg)}` : event));
  }
}

/**
 * The distinct things seen, in order of first appearance. How many reconnect attempts fit into an
 * outage depends on timing, not on tracing; which events and errors occur, and in what order they
 * first occur, must not change.
 */
function distinct(events: readonly string[]): string[] {
  return [...new Set(events)];
}

async function settle<T>(promise: Promise<T>): Promise<string> {
  try {
    const value = await promise;
    return `resolved ${typeof value}`;
  } catch (error) {
    return `rejected ${describeError(error)}`;
  }
}

function childOf(spans: Iterable<SpanRecord>, parent: SpanRecord | undefined): SpanRecord[] {
  return [...spans].filter((s) => parent !== undefined && s.parentSpanId === parent.spanId && s.traceId === parent.traceId);
}

describe('a Redis server of our own, stopped and started again under traced clients', () => {
  let server: ThrowawayRedis;

  before(async () => {
    server = new ThrowawayRedis(await freePort());
    await server.start();
  });
  after(async () => {
    await server.stop();
  });

  it('pub/sub, stream reads, a blocked command and commands queued while down behave as untraced; spans end; nothing leaks', async () => {
    const census = resourceCensus();
    const listeners = processListeners();
    const ledger = new SpanLedger();
    const failures = new FailureWatch();
    const stream = uniqueName('redis-restart-stream');
    // Short, fixed reconnect delays keep the outage short; both sides get the same ones.
    const options: RedisOptions = { host: '127.0.0.1', port: server.port, retryStrategy: () => 100 };

    interface Side {
      channel: string;
      pub: Redis;
      sub: Redis;
      blocker: Redis;
      events: Record<'pub' | 'sub' | 'blocker', string[]>;
      received: string[];
      list: string;
    }
    async function side(traced: boolean): Promise<Side> {
      const make = (commandSpans: boolean): Redis => {
        const client = new Redis(options);
        return traced ? traceRedis(client, { commandSpans }) : client;
      };
      const s: Side = { channel: uniqueName(traced ? 'redis-restart-traced' : 'redis-restart-plain'), pub: make(true), sub: make(false), blocker: make(true), events: { pub: [], sub: [], blocker: [] }, received: [], list: uniqueName('redis-restart-list') };
      watchEvents(s.pub, s.events.pub);
      watchEvents(s.sub, s.events.sub);
      watchEvents(s.blocker, s.events.blocker);
      s.sub.on('message', (_channel: string, message: string) => void s.received.push(message));
      clients.push(s.pub, s.sub, s.blocker);
      await s.sub.subscribe(s.channel);
      return s;
    }
    const clients: Redis[] = [];
    let stopConsumer: (() => Promise<void>) | undefined;
    // A failed assertion must not leave clients reconnecting forever, holding the test process open.
    const cleanUp = async (): Promise<void> => {
      await stopConsumer?.();
      for (const c of clients) c.disconnect();
    };
    try {
      const plain = await side(false);
      const traced = await side(true);
      const handled: string[] = [];
      const consumerErrors: string[] = [];
      const consumer = consumeStream(traced.pub, {
        streams: [stream],
        block: 200,
        handler: (entry) => {
          handled.push(String(entry.fields.n));
        },
        onError: (error) => void consumerErrors.push(describeError(error)),
      });
      stopConsumer = () => consumer.stop();
      await consumer.ready;

      // Before: one message each way, one entry.
      const root = startSpan('before the outage', { parent: null });
      await withContext(contextWithSpan(root), () => Promise.all([plain.pub.publish(plain.channel, 'm1'), traced.pub.publish(traced.channel, 'm1'), traced.pub.xadd(stream, '*', 'n', '1')]));
      root.end();
      await waitUntil(() => plain.received.includes('m1') && traced.received.includes('m1') && handled.length === 1, 'm1 and entry 1');

      // A blocked command in flight on each side when the server goes.
      const waiting = startSpan('waiting for work', { parent: null });
      const blocked = withContext(contextWithSpan(waiting), () => [plain, traced].map((s) => s.blocker.blpop(s.list, 10)));
      await sleep(50);
      await server.stop();
      // While it is down: commands queue in ioredis' offline queue, on both sides alike.
      const queued = [plain, traced].map((s) => Promise.all([settle(s.pub.publish(s.channel, 'm2')), settle(s.pub.xadd(s === traced ? stream : `${stream}-plain`, '*', 'n', '2'))]));
      await sleep(300);
      await server.start();

      // After: everything reconnects; a new message and a new entry flow as before.
      const readyAgain = (s: Side): boolean => (['pub', 'sub', 'blocker'] as const).every((k) => s.events[k].filter((e) => e === 'ready').length >= 2);
      await waitUntil(() => readyAgain(plain) && readyAgain(traced), 'every client ready again');
      // ioredis resubscribes on reconnect; a PUBLISH may still beat the SUBSCRIBE, so publish until it lands.
      for (let i = 3; !(plain.received.some((m) => m.startsWith('m3')) && traced.received.some((m) => m.startsWith('m3'))); i++) {
        await Promise.all([plain.pub.publish(plain.channel, `m3.${i}`), traced.pub.publish(traced.channel, `m3.${i}`)]);
        await sleep(20);
        if (i > 200) throw new Error('no message reached the subscribers after the restart');
      }
      await traced.pub.xadd(stream, '*', 'n', '3');
      await Promise.all([plain.pub.lpush(plain.list, 'unblock'), traced.pub.lpush(traced.list, 'unblock')]);
      const [plainBlocked, tracedBlocked] = await Promise.all(blocked);
      waiting.end();
      const [plainQueued, tracedQueued] = await Promise.all(queued);
      await waitUntil(() => handled.length >= 3, 'entries 2 and 3 handled after the restart');

      await consumer.stop();
      for (const s of [plain, traced]) await Promise.all([s.pub.quit(), s.sub.quit(), s.blocker.quit()]);
      await assertCensusBack(census, 'after every client quit');
      ledger.stop();

      // The application's view is the same on both sides.
      for (const k of ['pub', 'sub', 'blocker'] as const) assert.deepEqual(distinct(traced.events[k]), distinct(plain.events[k]), `${k} events`);
      assert.ok(plain.events.sub.includes('reconnecting'), 'the outage was seen');
      assert.deepEqual(tracedQueued, plainQueued);
      assert.deepEqual(plainQueued, ['resolved number', 'resolved string']);
      assert.deepEqual(tracedBlocked, [traced.list, 'unblock']);
      assert.deepEqual(plainBlocked, [plain.list, 'unblock']);
      // Payloads arrive unwrapped, as an untraced subscriber gets them.
      for (const s of [plain, traced]) {
        assert.equal(s.received[0], 'm1');
        for (const m of s.received) assert.match(m, /^m[123](\.\d+)?$/);
      }
      // Each entry handled once: the one before, the one queued while down, the one after.
      assert.deepEqual(handled, ['1', '2', '3']);

      // Every span ended: the blocked BLPOP's once its reply came, the queued ones once sent.
      assert.deepEqual(ledger.open().map((s) => s.name), []);
      const ended = [...ledger.ended.values()];
      const blpop = ended.filter((s) => s.name === 'BLPOP');
      assert.equal(blpop.length, 1);
      assert.equal(blpop[0]!.status.code, 'unset');
      assert.equal(blpop[0]!.parentSpanId, waiting.spanId);
      // The stream keeps its traces across the restart: each process span is the child of its send span.
      const sends = ended.filter((s) => s.name === `send ${stream}`);
      const processes = ended.filter((s) => s.name === `process ${stream}`);
      assert.equal(sends.length, 3);
      assert.equal(processes.length, 3);
      for (const send of sends) assert.equal(childOf(processes, send).length, 1, `the entry sent by ${send.spanId} was processed once, in its trace`);
      // So do the messages: each traced delivery continues its publisher's trace.
      const publishes = ended.filter((s) => s.name === `publish ${traced.channel}`);
      const deliveries = ended.filter((s) => s.name === `process ${traced.channel}`);
      assert.equal(deliveries.length, traced.received.length);
      for (const d of deliveries) assert.equal(publishes.filter((p) => p.spanId === d.parentSpanId).length, 1);
      // The stream consumer was told about the outage through onError, and only about that.
      for (const e of consumerErrors) assert.match(e, /ECONNREFUSED|Connection is closed|ECONNRESET|MaxRetriesPerRequest/);

      assert.deepEqual(failures.stop(), []);
      assert.deepEqual(processListeners(), listeners);
    } finally {
      ledger.stop();
      failures.stop();
      await cleanUp();
    }
  });
});

/** Kills, on the shared Redis, every connection whose name is one of `names`; returns how many. */
async function killConnections(admin: Redis, names: readonly string[]): Promise<number> {
  const list = (await admin.client('LIST')) as string;
  let killed = 0;
  for (const line of list.split('\n')) {
    const id = /(?:^|\s)id=(\d+)/.exec(line)?.[1];
    const name = /(?:^|\s)name=(\S*)/.exec(line)?.[1];
    if (id !== undefined && name !== undefined && names.includes(name)) {
      killed += Number(await admin.client('KILL', 'ID', id));
    }
  }
  return killed;
}

describe('our own connections killed on the shared Redis (CLIENT KILL)', () => {
  let admin: Redis;
  const keys: string[] = [];

  before(async () => {
    admin = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
    await admin.ping();
  });
  after(async () => {
    if (keys.length > 0) await admin.del(...keys);
    await admin.quit();
  });

  it('a traced subscriber and a stream group member reconnect and carry on: each entry once, every trace intact', async () => {
    const census = resourceCensus();
    const ledger = new SpanLedger();
    const failures = new FailureWatch();
    const tracedName = uniqueName('traced');
    const plainName = uniqueName('plain');
    const channel = uniqueName('redis-kill');
    const plainChannel = uniqueName('redis-kill-plain');
    const stream = uniqueName('redis-kill-stream');
    const group = uniqueName('group');
    keys.push(stream);

    const traced = traceRedis(new Redis(REDIS_URL, { connectionName: tracedName, retryStrategy: () => 50 }));
    // duplicate() keeps the name, so the subscriber and the consumer's own connection are found too.
    const tracedSub = traced.duplicate();
    const plainSub = new Redis(REDIS_URL, { connectionName: plainName, retryStrategy: () => 50 });
    // The untraced application publishes with a client that is never killed, as the traced one's XADDs are queued.
    const plainPub = new Redis(REDIS_URL);
    const clients = [traced, tracedSub, plainSub, plainPub];
    const events = { traced: [] as string[], plain: [] as string[] };
    watchEvents(tracedSub, events.traced);
    watchEvents(plainSub, events.plain);
    traced.on('error', () => undefined);
    const received = { traced: [] as string[], plain: [] as string[] };
    tracedSub.on('message', (_c: string, m: string) => void received.traced.push(m));
    plainSub.on('message', (_c: string, m: string) => void received.plain.push(m));
    let stopConsumer: (() => Promise<void>) | undefined;
    try {
      await Promise.all([tracedSub.subscribe(channel), plainSub.subscribe(plainChannel)]);

      const handled: string[] = [];
      const consumer = consumeStream(traced, {
        streams: [stream], group, createGroup: true, block: 200,
        handler: (entry) => void handled.push(String(entry.fields.n)),
        onError: () => undefined,
      });
      stopConsumer = () => consumer.stop();
      await consumer.ready;

      const send = async (n: number): Promise<void> => {
        await traced.xadd(stream, '*', 'n', String(n));
        await Promise.all([traced.publish(channel, `m${n}`), plainPub.publish(plainChannel, `m${n}`)]);
      };
      for (let n = 1; n <= 5; n++) await send(n);
      await waitUntil(() => handled.length === 5 && received.traced.length === 5 && received.plain.length === 5, 'the first five');

      // Sever every connection of both applications, blocked XREADGROUP included.
      const killed = await killConnections(admin, [tracedName, plainName]);
      assert.equal(killed, 4, 'the traced client, its subscriber, the consumer connection and the plain subscriber');
      for (let n = 6; n <= 10; n++) await send(n);
      // A message published before the subscriber is back is lost for traced and untraced alike
      // (pub/sub has no memory), so publish until one lands on both.
      for (let i = 0; !(received.traced.includes('late') && received.plain.includes('late')); i++) {
        await Promise.all([traced.publish(channel, 'late'), plainPub.publish(plainChannel, 'late')]);
        await sleep(20);
        if (i > 200) throw new Error('no message reached the subscribers after the kill');
      }
      await waitUntil(() => handled.length >= 10, 'entries 6 to 10');
      // Every entry acknowledged: nothing stays pending in the group (acks are sent after each handler).
      let pending = -1;
      for (let i = 0; i < 100 && pending !== 0; i++) {
        pending = Number(((await admin.xpending(stream, group)) as unknown[])[0]);
        if (pending !== 0) await sleep(20);
      }

      await consumer.stop();
      await Promise.all(clients.map((c) => c.quit()));
      await assertCensusBack(census, 'after every client quit');
      ledger.stop();

      assert.deepEqual(handled, ['1', '2', '3', '4', '5', '6', '7', '8', '9', '10'], 'each entry handled once, in order');
      assert.equal(pending, 0, 'no entry left pending');
      assert.deepEqual(distinct(events.traced), distinct(events.plain));
      assert.ok(events.plain.includes('reconnecting'));
      // What reached each subscriber (messages published while it was away are lost to both alike).
      assert.deepEqual(received.traced.slice(0, 5), ['m1', 'm2', 'm3', 'm4', 'm5']);
      assert.deepEqual(received.plain.slice(0, 5), ['m1', 'm2', 'm3', 'm4', 'm5']);
      for (const m of [...received.traced, ...received.plain]) assert.match(m, /^(m\d+|late)$/);

      assert.deepEqual(ledger.open().map((s) => s.name), []);
      const ended = [...ledger.ended.values()];
      const sends = ended.filter((s) => s.name === `send ${stream}`);
      const processes = ended.filter((s) => s.name === `process ${stream}`);
      assert.equal(sends.length, 10);
      for (const s of sends) assert.equal(childOf(processes, s).length, 1);
      assert.deepEqual(failures.stop(), []);
    } finally {
      ledger.stop();
      failures.stop();
      await stopConsumer?.();
      for (const c of clients) c.disconnect();
    }
  });
});
