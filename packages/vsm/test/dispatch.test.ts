import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { Collector, currentSpan, span, type SpanRecord } from '@cyb/core';
import {
  createVsm,
  locateFunction,
  UnknownOperationError,
  UnknownSystemError,
  vsmStats,
  type DispatchContext,
  type Vsm,
} from '../src/index.js';
import { checkStatus, handleOperation, ping, rebalance, type Work } from './fixtures/s1-operations.js';
import { Coordinator } from './fixtures/s2-coordination.js';
import { controlHandlers } from './fixtures/s3-control.js';
import { intelligenceHandlers } from './fixtures/s4-intelligence.js';
import { PolicyEngine, reviewHandlers } from './fixtures/s5-policy.js';
import { allSpans, declaration, spanNamed } from './helpers.js';

const work = (): Work => ({ orderId: 7, hops: [] });

/** Every operation of every system, with the declaration its span must point at. */
const OPERATIONS = [
  { system: 's1', operation: 'operation', payload: work(), fixture: 's1-operations.ts', needle: 'function handleOperation(', fn: 'handleOperation', arity: 2 },
  { system: 's1', operation: 'status', payload: { probe: 'p' }, fixture: 's1-operations.ts', needle: 'function checkStatus(', fn: 'checkStatus', arity: 1 },
  { system: 's1', operation: 'rebalance', payload: { units: 3 }, fixture: 's1-operations.ts', needle: 'function rebalance(', fn: 'rebalance', arity: 2 },
  { system: 's1', operation: 'ping', payload: undefined, fixture: 's1-operations.ts', needle: 'function ping(', fn: 'ping', arity: 0 },
  { system: 's2', operation: 'coordinate', payload: work(), fixture: 's2-coordination.ts', needle: 'async coordinate(', fn: 'Coordinator.coordinate', arity: 2 },
  { system: 's2', operation: 'resolveConflict', payload: { a: 1, b: 2 }, fixture: 's2-coordination.ts', needle: 'resolveConflict(payload', fn: 'Coordinator.resolveConflict', arity: 1 },
  { system: 's2', operation: 'schedule', payload: { jobs: 9 }, fixture: 's2-coordination.ts', needle: 'schedule(payload', fn: 'Scheduler.schedule', arity: 1 },
  { system: 's3', operation: 'control', payload: work(), fixture: 's3-control.ts', needle: 'control: async (', fn: 'control', arity: 2 },
  { system: 's3', operation: 'audit', payload: { limit: 1 }, fixture: 's3-control.ts', needle: 'audit: (', fn: 'audit', arity: 1 },
  { system: 's3', operation: 'throttle', payload: { rate: 2 }, fixture: 's3-control.ts', needle: '(payload: { rate: number }', fn: 'throttle', arity: 2 },
  { system: 's4', operation: 'intelligence', payload: work(), fixture: 'shared/analysis.ts', needle: 'function analyzeEnvironment(', fn: 'analyzeEnvironment', arity: 2 },
  { system: 's4', operation: 'forecast', payload: { horizon: 3 }, fixture: 'shared/analysis.ts', needle: 'function forecast(', fn: 'forecast', arity: 1 },
  { system: 's5', operation: 'policy', payload: work(), fixture: 's5-policy.ts', needle: 'static policy(', fn: 'PolicyEngine.policy', arity: 1 },
  { system: 's5', operation: 'identity', payload: undefined, fixture: 's5-policy.ts', needle: 'static async identity(', fn: 'PolicyEngine.identity', arity: 0 },
  { system: 's5', operation: 'review', payload: { rule: 'r' }, fixture: 's5-policy.ts', needle: 'review(payload', fn: 'Governor.review', arity: 1 },
] as const;

function buildVsm(): Vsm {
  return createVsm()
    .system('s1', { operation: handleOperation, status: checkStatus, rebalance, ping })
    .system('s2', new Coordinator())
    .system('s3', controlHandlers)
    .system('s4', intelligenceHandlers)
    .system('s5', PolicyEngine)
    .system('s5', reviewHandlers);
}

describe('createVsm', () => {
  const collector = new Collector({ maxTraces: 2000, maxSpansPerTrace: 20 });
  let vsm: Vsm;

  before(() => {
    collector.start();
    vsm = buildVsm();
  });
  after(() => collector.stop());
  beforeEach(() => collector.clear());

  describe('.dispatch()', () => {
    for (const op of OPERATIONS) {
      it(`traces ${op.system}.${op.operation} with the handler's declaration`, async () => {
        await vsm.dispatch(op.system, op.operation, op.payload);
        const s = spanNamed(allSpans(collector), `vsm.${op.system} ${op.operation}`);
        const where = declaration(op.fixture, op.needle);
        assert.deepEqual(
          { module: s.module, function: s.function, arity: s.arity, file: s.file, line: s.line },
          { module: where.module, function: op.fn, arity: op.arity, file: where.file, line: where.line },
        );
        assert.equal(s.kind, 'internal');
        assert.equal(s.status.code, 'unset');
        assert.equal(s.attributes['vsm.system'], op.system);
        assert.equal(s.attributes['vsm.operation'], op.operation);
        const size = op.payload === undefined ? 0 : Buffer.byteLength(JSON.stringify(op.payload));
        assert.equal(s.attributes['vsm.payload.size'], size);
      });
    }

    it('returns what the handler returns and calls methods on their instance', async () => {
      assert.deepEqual(await vsm.dispatch('s2', 'resolveConflict', { a: 1, b: 2 }), 6);
      assert.deepEqual(await vsm.dispatch('s3', 'throttle', { rate: 2 }), 2);
      assert.deepEqual(await vsm.dispatch('s4', 'forecast', { horizon: 3 }), [0, 1, 2]);
      assert.equal(await vsm.dispatch('s5', 'review', { rule: 'r' }), true);
      const token = { unique: Symbol('result') };
      const own = createVsm().system('x', { echo: () => token });
      assert.equal(await own.dispatch('x', 'echo'), token);
    });

    it('nests ctx.send from S1 through S5 in one trace', async () => {
      const result = await span('request', {}, () => vsm.dispatch<Work>('s1', 'operation', work(), { requestId: 'r1' }));
      assert.deepEqual(result.hops, ['s1']);
      const spans = allSpans(collector);
      const root = spanNamed(spans, 'request');
      const chain = ['vsm.s1 operation', 'vsm.s2 coordinate', 'vsm.s3 control', 'vsm.s4 intelligence', 'vsm.s5 policy'].map((n) =>
        spanNamed(spans, n),
      );
      let parent: SpanRecord = root;
      for (const s of chain) {
        assert.equal(s.traceId, root.traceId, s.name);
        assert.equal(s.parentSpanId, parent.spanId, s.name);
        parent = s;
      }
    });

    it('hands meta and the operation to the handler', async () => {
      let seen: DispatchContext | undefined;
      const own = createVsm().system('s3', {
        inspect(_payload: unknown, ctx: DispatchContext) {
          seen = ctx;
        },
      });
      await own.dispatch('s3', 'inspect', {}, { requestId: 'abc' });
      assert.equal(seen?.system, 's3');
      assert.equal(seen?.operation, 'inspect');
      assert.deepEqual(seen?.meta, { requestId: 'abc' });
    });

    it("records a handler's error and rejects with the very same error", async () => {
      const boom = new RangeError('out of budget');
      const own = createVsm().system('s3', {
        overspend() {
          throw boom;
        },
        async later() {
          await delay(1);
          throw boom;
        },
      });
      for (const operation of ['overspend', 'later']) {
        collector.clear();
        await assert.rejects(own.dispatch('s3', operation), (err) => err === boom);
        const s = spanNamed(allSpans(collector), `vsm.s3 ${operation}`);
        assert.equal(s.status.code, 'error');
        assert.equal(s.status.message, 'out of budget');
        assert.equal(s.events.find((e) => e.name === 'exception')?.attributes?.['exception.type'], 'RangeError');
      }
    });

    it('rejects an unknown operation with UnknownOperationError, recorded as an error span', async () => {
      const err = await vsm.dispatch('s1', 'teleport', { x: 1 }).then(
        () => assert.fail('dispatch of an unknown operation resolved'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof UnknownOperationError);
      assert.ok(!(err instanceof UnknownSystemError));
      assert.equal(err.system, 's1');
      assert.equal(err.operation, 'teleport');
      assert.equal(err.code, 'ERR_VSM_UNKNOWN_OPERATION');
      const s = spanNamed(allSpans(collector), 'vsm.s1 teleport');
      assert.equal(s.status.code, 'error');
      assert.equal(s.attributes['vsm.operation'], 'teleport');
      assert.equal(s.events.find((e) => e.name === 'exception')?.attributes?.['exception.type'], 'UnknownOperationError');
      assert.equal(s.function, undefined);
    });

    it('rejects an unknown system with UnknownSystemError, a kind of UnknownOperationError', async () => {
      await assert.rejects(vsm.dispatch('s9', 'status'), (err) => {
        assert.ok(err instanceof UnknownSystemError);
        assert.ok(err instanceof UnknownOperationError);
        assert.equal((err as UnknownSystemError).code, 'ERR_VSM_UNKNOWN_SYSTEM');
        return true;
      });
      assert.equal(spanNamed(allSpans(collector), 'vsm.s9 status').status.code, 'error');
      // Names inherited from Object.prototype are not operations.
      await assert.rejects(vsm.dispatch('s1', 'constructor'), UnknownOperationError);
      await assert.rejects(vsm.dispatch('s1', '__proto__'), UnknownOperationError);
    });

    it('keeps 500 concurrent dispatches in their own traces', async () => {
      const own = createVsm()
        .system('load', {
          async step(payload: { i: number }, ctx: DispatchContext) {
            const mine = currentSpan()?.spanContext();
            await delay(payload.i % 7);
            await new Promise((r) => setImmediate(r));
            const inner = (await ctx.send('echo', 'back', payload)) as { spanId?: string; traceId?: string };
            const after = currentSpan()?.spanContext();
            return { i: payload.i, traceId: mine?.traceId, spanId: mine?.spanId, afterSpanId: after?.spanId, inner };
          },
        })
        .system('echo', {
          async back() {
            await delay(Math.floor(Math.random() * 5));
            return { spanId: currentSpan()?.spanContext().spanId, traceId: currentSpan()?.spanContext().traceId };
          },
        });
      const results = await Promise.all(
        Array.from({ length: 500 }, (_, i) =>
          span(`request ${i}`, {}, async () => {
            const rootId = currentSpan()?.spanContext();
            const r = await own.dispatch<{ i: number; traceId: string; spanId: string; afterSpanId: string; inner: { spanId: string; traceId: string } }>(
              'load',
              'step',
              { i },
            );
            assert.equal(currentSpan()?.spanContext().spanId, rootId?.spanId, 'the caller context is restored');
            return { ...r, rootTraceId: rootId?.traceId, rootSpanId: rootId?.spanId };
          }),
        ),
      );
      assert.equal(currentSpan(), undefined);
      const byId = new Map(allSpans(collector).map((s) => [s.spanId, s]));
      const traceIds = new Set<string>();
      for (const r of results) {
        traceIds.add(r.traceId);
        assert.equal(r.traceId, r.rootTraceId, `dispatch ${r.i} saw another trace`);
        assert.equal(r.afterSpanId, r.spanId, `dispatch ${r.i} lost its span across awaits`);
        assert.equal(r.inner.traceId, r.traceId);
        const step = byId.get(r.spanId);
        const back = byId.get(r.inner.spanId);
        assert.equal(step?.name, 'vsm.load step');
        assert.equal(step?.parentSpanId, r.rootSpanId);
        assert.equal(step?.attributes['vsm.payload.size'], Buffer.byteLength(JSON.stringify({ i: r.i })));
        assert.equal(back?.parentSpanId, r.spanId);
      }
      assert.equal(traceIds.size, 500);
      assert.equal(collector.traces().length, 500);
      for (const t of collector.traces()) assert.equal(t.spans.length, 3);
    });

    it('still dispatches, untraced, when nothing collects spans', async () => {
      collector.stop();
      try {
        assert.equal(await vsm.dispatch('s1', 'rebalance', { units: 5 }), 10);
        await assert.rejects(vsm.dispatch('s1', 'nope'), UnknownOperationError);
      } finally {
        collector.start();
      }
      assert.equal(allSpans(collector).length, 0);
    });
  });

  describe('.system()', () => {
    it('fails fast on a duplicate operation or something that is not a handler', () => {
      assert.throws(() => createVsm().system('s1', { a: ping }).system('s1', { a: ping }), TypeError);
      assert.throws(() => createVsm().system('s1', { a: 'ping' }), TypeError);
      assert.throws(() => createVsm().system('s1', {}), TypeError);
      assert.throws(() => createVsm().system('', { a: ping }), TypeError);
      assert.throws(() => createVsm().system('s1', null as unknown as object), TypeError);
    });

    it('lists every operation with its location', () => {
      const ops = vsm.operations();
      assert.equal(ops.length, OPERATIONS.length);
      for (const op of OPERATIONS) {
        const found = ops.find((o) => o.system === op.system && o.operation === op.operation);
        assert.equal(found?.code.function, op.fn);
        assert.equal(found?.code.line, declaration(op.fixture, op.needle).line);
      }
      assert.ok(vsm.has('s2', 'coordinate'));
      assert.ok(!vsm.has('s2', 'teleport'));
      assert.ok(!vsm.has('s9'));
    });
  });
});

describe('locateFunction', () => {
  it('locates a function declared in another module, through its source map', () => {
    const where = declaration('s1-operations.ts', 'function handleOperation(');
    assert.deepEqual(locateFunction(handleOperation), {
      module: where.module,
      function: 'handleOperation',
      arity: 2,
      file: where.file,
      line: where.line,
    });
  });

  it('names a bound method after its class and honours a given root', () => {
    const governor = reviewHandlers.review;
    const where = declaration('s5-policy.ts', 'review(payload');
    const loc = locateFunction(governor, { root: `${process.cwd()}/..` });
    assert.equal(loc.function, 'Governor.review');
    assert.equal(loc.line, where.line);
    assert.ok(loc.file?.endsWith('test/fixtures/s5-policy.ts'));
  });

  it('gives name and arity without a location for native functions, and counts it', () => {
    const before = vsmStats().locationFailures;
    assert.deepEqual(locateFunction(Math.max), { function: 'max', arity: 2 });
    assert.equal(vsmStats().locationFailures, before + 1);
  });

  it('is skipped with createVsm({ locate: false })', () => {
    const [op] = createVsm({ locate: false }).system('s5', PolicyEngine).operations();
    assert.deepEqual(op?.code, { function: 'PolicyEngine.policy', arity: 1 });
  });
});
