import assert from 'node:assert/strict';
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { trace } from '@opentelemetry/api';
import { Redis } from 'ioredis';
import { Collector, span, type SpanRecord } from '@cyb/core';
import { createBridge, StateConflictError, type PushResult, type StateConflict } from '../src/index.js';
import { allSpans, PACKAGE_DIR, REDIS_URL, spanNamed, uniqueName } from './helpers.js';

interface ChildReply {
  ready?: boolean;
  error?: string;
  pulled?: { state: { budget: number }; version: number; writer: string };
  answer?: PushResult;
  spans?: SpanRecord[];
  results?: PushResult[];
}

function nextReply(child: ChildProcess): Promise<ChildReply> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: ChildReply): void => {
      child.off('exit', onExit);
      if (m.error !== undefined) reject(new Error(`child failed: ${m.error}`));
      else resolve(m);
    };
    const onExit = (code: number | null): void => {
      child.off('message', onMessage);
      reject(new Error(`child exited with ${code}`));
    };
    child.once('message', onMessage);
    child.once('exit', onExit);
  });
}

describe('createBridge', () => {
  const collector = new Collector({ maxTraces: 500 });
  const prefix = `${uniqueName('bridge')}:`;
  let redis: Redis;
  let child: ChildProcess | undefined;

  before(async () => {
    collector.start();
    // No reconnecting: without Redis the suite fails at once instead of retrying in the background.
    redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1, lazyConnect: true, retryStrategy: () => null });
    redis.on('error', () => undefined);
    await redis.connect();
  });

  after(async () => {
    collector.stop();
    if (child !== undefined && child.exitCode === null) {
      child.send({ cmd: 'exit' });
      await Promise.race([once(child, 'exit'), new Promise((r) => setTimeout(r, 2000).unref())]);
      if (child.exitCode === null) child.kill();
    }
    if (redis.status !== 'ready') {
      redis.disconnect();
      return;
    }
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
    await redis.quit();
  });

  beforeEach(() => collector.clear());

  async function startChild(): Promise<ChildProcess> {
    if (child !== undefined) return child;
    const c = fork(join(PACKAGE_DIR, 'dist', 'test', 'fixtures', 'bridge-child.js'), [], {
      env: { ...process.env, REDIS_URL },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const ready = await nextReply(c);
    assert.equal(ready.ready, true);
    child = c;
    return c;
  }

  describe('.pushState() / .pullState()', () => {
    it('stores the state with a version and the pushing span context, and the pull continues that trace', async () => {
      const bridge = createBridge(redis, { prefix, writer: 'parent' });
      const result = await span('s3 decide', {}, () => bridge.pushState('budget', { budget: 10 }));
      assert.deepEqual(result, { key: 'budget', version: 1 });

      const pulled = await bridge.pullState<{ budget: number }>('budget');
      assert.deepEqual(pulled?.state, { budget: 10 });
      assert.equal(pulled?.version, 1);
      assert.equal(pulled?.writer, 'parent');
      assert.equal(bridge.seenVersion('budget'), 1);

      const spans = allSpans(collector);
      const decide = spanNamed(spans, 's3 decide');
      const push = spanNamed(spans, 'vsm.bridge push_state');
      const pull = spanNamed(spans, 'vsm.bridge pull_state');
      assert.equal(push.parentSpanId, decide.spanId);
      assert.equal(push.kind, 'producer');
      assert.equal(push.attributes['vsm.bridge.version'], 1);
      assert.equal(pull.kind, 'consumer');
      assert.equal(pull.traceId, decide.traceId);
      assert.equal(pull.parentSpanId, push.spanId);
      assert.equal(pull.attributes['vsm.bridge.found'], true);
      assert.ok(pull.timestamp >= push.timestamp);
      assert.equal(trace.getSpanContext(pulled?.context as never)?.spanId, push.spanId);

      // What Redis holds: the traceparent names the push span.
      const stored = JSON.parse((await redis.hget(`${prefix}budget`, 'ctx')) as string) as { traceparent: string };
      assert.match(stored.traceparent, new RegExp(`^00-${decide.traceId}-${push.spanId}-[0-9a-f]{2}$`));
    });

    it('makes a pull inside a span its child, linked to the push', async () => {
      const bridge = createBridge(redis, { prefix, writer: 'parent' });
      await bridge.pushState('linked', { n: 1 });
      const push = spanNamed(allSpans(collector), 'vsm.bridge push_state');
      await span('s4 scan', {}, () => bridge.pullState('linked'));
      const spans = allSpans(collector);
      const scan = spanNamed(spans, 's4 scan');
      const pull = spanNamed(spans, 'vsm.bridge pull_state');
      assert.equal(pull.parentSpanId, scan.spanId);
      assert.notEqual(pull.traceId, push.traceId);
      assert.deepEqual(pull.links.map((l) => [l.traceId, l.spanId]), [[push.traceId, push.spanId]]);
    });

    it('pulls undefined for a key never pushed', async () => {
      const bridge = createBridge(redis, { prefix });
      assert.equal(await bridge.pullState('never'), undefined);
      assert.equal(spanNamed(allSpans(collector), 'vsm.bridge pull_state').attributes['vsm.bridge.found'], false);
    });

    it('lets the last writer win and reports the state it overwrote', async () => {
      const reported: StateConflict[] = [];
      const a = createBridge(redis, { prefix, writer: 'a' });
      const b = createBridge(redis, { prefix, writer: 'b', onConflict: (c) => reported.push(c) });
      assert.equal((await a.pushState('lww', { from: 'a' })).conflict, undefined);
      const overwrite = await b.pushState('lww', { from: 'b' });
      assert.equal(overwrite.version, 2);
      assert.equal(overwrite.conflict?.overwritten, true);
      assert.equal(overwrite.conflict?.baseVersion, 0);
      assert.equal(overwrite.conflict?.currentVersion, 1);
      assert.equal(overwrite.conflict?.version, 2);
      assert.deepEqual(overwrite.conflict?.previous.state, { from: 'a' });
      assert.equal(overwrite.conflict?.previous.writer, 'a');
      assert.deepEqual(reported, [overwrite.conflict]);
      assert.equal((await b.pushState('lww', { from: 'b', again: true })).conflict, undefined, 'b built on its own version');
      const stale = await a.pushState('lww', { from: 'a', stale: true });
      assert.equal(stale.conflict?.baseVersion, 1);
      assert.equal(stale.conflict?.currentVersion, 3);
      assert.deepEqual(stale.conflict?.previous.state, { from: 'b', again: true });
      assert.deepEqual(a.stats(), { pushes: 2, pulls: 0, conflicts: 1, rejected: 0 });

      const conflicted = allSpans(collector).filter((s) => s.attributes['vsm.bridge.conflict'] === true);
      assert.equal(conflicted.length, 2);
      const event = conflicted[0]?.events.find((e) => e.name === 'vsm.bridge.conflict');
      assert.equal(event?.attributes?.['vsm.bridge.current_version'], 1);
      assert.equal(event?.attributes?.['vsm.bridge.previous_writer'], 'a');
    });

    it("rejects a stale push with ifConflict: 'reject' and writes nothing", async () => {
      const a = createBridge(redis, { prefix, writer: 'a' });
      const b = createBridge(redis, { prefix, writer: 'b' });
      await a.pushState('strict', { v: 'a1' });
      await b.pushState('strict', { v: 'b1' });
      await assert.rejects(a.pushState('strict', { v: 'a2' }, { ifConflict: 'reject' }), (err) => {
        assert.ok(err instanceof StateConflictError);
        assert.equal(err.conflict.overwritten, false);
        assert.equal(err.conflict.version, undefined);
        assert.deepEqual(err.conflict.previous.state, { v: 'b1' });
        return true;
      });
      assert.deepEqual((await b.pullState('strict'))?.state, { v: 'b1' });
      assert.equal((await b.pullState('strict'))?.version, 2);
      const failed = allSpans(collector).filter((s) => s.name === 'vsm.bridge push_state' && s.status.code === 'error');
      assert.equal(failed.length, 1);
      // Having been told the current state, the next push is based on it.
      assert.equal((await a.pushState('strict', { v: 'a3' }, { ifConflict: 'reject' })).version, 3);
    });

    it('rejects a bad key or a state with no JSON form', async () => {
      const bridge = createBridge(redis, { prefix });
      await assert.rejects(bridge.pushState('', {}), TypeError);
      await assert.rejects(bridge.pushState('k', undefined), TypeError);
      await assert.rejects(bridge.pullState(''), TypeError);
    });
  });

  describe('across two processes', () => {
    it('carries the trace with the state from one process to the other and back', async () => {
      const c = await startChild();
      const bridge = createBridge(redis, { prefix, writer: 'parent' });
      await span('s5 set policy', {}, () => bridge.pushState('shared', { budget: 10 }));
      const parentPush = spanNamed(allSpans(collector), 'vsm.bridge push_state');

      c.send({ cmd: 'pull-and-answer', key: 'shared', prefix });
      const reply = await nextReply(c);
      assert.deepEqual(reply.pulled, { state: { budget: 10 }, version: 1, writer: 'parent' });
      assert.equal(reply.answer?.version, 2);
      const childSpans = reply.spans ?? [];
      const childPull = spanNamed(childSpans, 'vsm.bridge pull_state');
      const childPush = spanNamed(childSpans, 'vsm.bridge push_state');
      assert.equal(childPull.traceId, parentPush.traceId);
      assert.equal(childPull.parentSpanId, parentPush.spanId);
      assert.equal(childPush.traceId, parentPush.traceId);
      assert.notEqual(childPull.resource['process.pid'], process.pid);

      collector.clear();
      const back = await bridge.pullState<{ budget: number; by: string }>('shared');
      assert.deepEqual(back?.state, { budget: 9, by: 'child' });
      assert.equal(back?.writer, 'child');
      const pullBack = spanNamed(allSpans(collector), 'vsm.bridge pull_state');
      assert.equal(pullBack.traceId, parentPush.traceId);
      assert.equal(pullBack.parentSpanId, childPush.spanId);
    });

    it('loses no concurrent push silently: every version is written once, every overwrite reported', async () => {
      const c = await startChild();
      const count = 40;
      const bridge = createBridge(redis, { prefix, writer: 'parent' });
      c.send({ cmd: 'race', key: 'race', prefix, count });
      const childDone = nextReply(c);
      const mine: PushResult[] = [];
      for (let i = 0; i < count; i++) {
        mine.push(await bridge.pushState('race', { writer: 'parent', i }));
        if (i % 2 === 0) await new Promise((r) => setImmediate(r));
      }
      const theirs = (await childDone).results ?? [];
      assert.equal(theirs.length, count);

      const byVersion = new Map<number, { writer: string; state: unknown; result: PushResult }>();
      mine.forEach((result, i) => byVersion.set(result.version, { writer: 'parent', state: { writer: 'parent', i }, result }));
      theirs.forEach((result, i) => {
        assert.ok(!byVersion.has(result.version), `version ${result.version} written twice`);
        byVersion.set(result.version, { writer: 'child', state: { writer: 'child', i }, result });
      });
      assert.deepEqual([...byVersion.keys()].sort((x, y) => x - y), Array.from({ length: 2 * count }, (_, i) => i + 1));
      let conflicts = 0;
      for (let v = 2; v <= 2 * count; v++) {
        const here = byVersion.get(v);
        const before = byVersion.get(v - 1);
        const overwroteOther = here?.writer !== before?.writer;
        assert.equal(here?.result.conflict !== undefined, overwroteOther, `version ${v}`);
        if (here?.result.conflict) {
          conflicts++;
          assert.equal(here.result.conflict.currentVersion, v - 1);
          assert.equal(here.result.conflict.previous.writer, before?.writer);
          assert.deepEqual(here.result.conflict.previous.state, before?.state);
        }
      }
      assert.ok(conflicts >= 1);
      assert.equal((await bridge.pullState('race'))?.version, 2 * count);
    });
  });
});
