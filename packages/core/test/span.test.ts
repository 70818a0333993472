import assert from 'node:assert/strict';
import { createHook } from 'node:async_hooks';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { context, createContextKey, ROOT_CONTEXT, trace } from '@opentelemetry/api';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import {
  Collector,
  configure,
  contextWithSpan,
  currentSpan,
  extract,
  onSpanEnd,
  span,
  startSpan,
  withContext,
  type SpanRecord,
} from '@cyb/core';

describe('span()', () => {
  const collector = new Collector({ maxSpansPerTrace: 500 });
  before(() => collector.start());
  after(() => collector.stop());

  it('nests spans across await, timers and promise chains', async () => {
    collector.clear();
    await span('root', {}, async () => {
      await sleep(2);
      await span('a', {}, async () => {
        await new Promise<void>((resolve) => setTimeout(() => span('a.timer', {}, () => resolve()), 1));
      });
      await Promise.resolve().then(() => span('b', {}, () => 1));
    });
    const [trace] = collector.traces();
    assert.ok(trace);
    const byName = new Map(trace.spans.map((s) => [s.name, s]));
    const root = byName.get('root') as SpanRecord;
    assert.equal(root.parentSpanId, undefined);
    assert.equal(byName.get('a')?.parentSpanId, root.spanId);
    assert.equal(byName.get('a.timer')?.parentSpanId, byName.get('a')?.spanId);
    assert.equal(byName.get('b')?.parentSpanId, root.spanId);
    assert.ok(trace.spans.every((s) => s.traceId === root.traceId));
  });

  it('keeps 100 concurrent branches apart under Promise.all', async () => {
    collector.clear();
    await span('fan-out', {}, () =>
      Promise.all(
        Array.from({ length: 100 }, (_, i) =>
          span(`branch-${i}`, { attributes: { i } }, async () => {
            await sleep(Math.random() * 5);
            const mine = currentSpan()?.spanContext().spanId;
            await span(`leaf-${i}`, {}, async () => {
              await sleep(Math.random() * 5);
            });
            return mine;
          }),
        ),
      ),
    );
    const [trace] = collector.traces();
    assert.ok(trace);
    assert.equal(trace.spans.length, 201);
    const byName = new Map(trace.spans.map((s) => [s.name, s]));
    for (let i = 0; i < 100; i++) {
      assert.equal(byName.get(`leaf-${i}`)?.parentSpanId, byName.get(`branch-${i}`)?.spanId, `leaf-${i}`);
      assert.equal(byName.get(`branch-${i}`)?.parentSpanId, byName.get('fan-out')?.spanId);
    }
  });

  it('returns the result unchanged and the very same promise', async () => {
    const value = { v: 1 };
    assert.equal(span('sync', {}, () => value), value);
    const p = Promise.resolve(value);
    assert.equal(span('async', {}, () => p), p);
    assert.equal(await span('async2', {}, async () => value), value);
  });

  it('records a thrown error and rethrows the same object', async () => {
    collector.clear();
    const boom = new TypeError('boom');
    assert.throws(
      () => span('sync-fail', {}, () => { throw boom; }),
      (err) => err === boom,
    );
    const rejection = new RangeError('nope');
    await assert.rejects(span('async-fail', {}, async () => { await sleep(1); throw rejection; }), (err) => err === rejection);
    const thrownString = 'plain string';
    assert.throws(() => span('string-fail', {}, () => { throw thrownString; }), (err) => err === thrownString);
    const spans = collector.traces().flatMap((t) => t.spans);
    const syncFail = spans.find((s) => s.name === 'sync-fail');
    const asyncFail = spans.find((s) => s.name === 'async-fail');
    assert.deepEqual(syncFail?.status, { code: 'error', message: 'boom' });
    assert.equal(syncFail?.events[0]?.attributes?.['exception.type'], 'TypeError');
    assert.deepEqual(asyncFail?.status, { code: 'error', message: 'nope' });
    assert.equal(spans.find((s) => s.name === 'string-fail')?.status.code, 'error');
  });

  it('carries the code location and attributes from meta', () => {
    collector.clear();
    span('located', { attributes: { 'vsm.system': 's1' }, code: { module: 'src/a', function: 'handle', arity: 2, file: 'src/a.ts', line: 12 } }, () => undefined);
    const s = collector.traces()[0]?.spans[0];
    assert.equal(s?.module, 'src/a');
    assert.equal(s?.function, 'handle');
    assert.equal(s?.arity, 2);
    assert.equal(s?.file, 'src/a.ts');
    assert.equal(s?.line, 12);
    assert.equal(s?.attributes['vsm.system'], 's1');
    assert.ok(Number.isInteger(s?.timestamp) && (s?.timestamp ?? 0) > 1.7e15, 'timestamp in microseconds since the epoch');
  });

  it('has no active span outside its scope', async () => {
    await span('scoped', {}, async () => {
      assert.ok(currentSpan());
      await sleep(1);
      assert.ok(currentSpan());
    });
    assert.equal(currentSpan(), undefined);
  });
});

describe('span() with no subscriber', () => {
  it('calls fn directly and records nothing', () => {
    let seen = 0;
    const result = span('unobserved', {}, () => {
      seen++;
      return currentSpan();
    });
    assert.equal(seen, 1);
    assert.equal(result, undefined);
  });
});

describe('startSpan()', () => {
  it('is a child of the active span and of an explicit parent; null starts a trace', () => {
    const ended: SpanRecord[] = [];
    const stop = onSpanEnd((s) => ended.push(s));
    const parent = startSpan('parent');
    const child = withContext(contextWithSpan(parent), () => startSpan('child', { kind: 'server' }));
    const root = withContext(contextWithSpan(parent), () => startSpan('root', { parent: null }));
    child.end();
    root.end();
    parent.end();
    stop();
    assert.equal(child.parentSpanId, parent.spanId);
    assert.equal(child.traceId, parent.traceId);
    assert.equal(child.kind, 'server');
    assert.equal(root.parentSpanId, undefined);
    assert.notEqual(root.traceId, parent.traceId);
    assert.equal(ended.length, 3);
  });

  it('ignores a second end()', () => {
    const ended: SpanRecord[] = [];
    const stop = onSpanEnd((s) => ended.push(s));
    const s = startSpan('once');
    s.end();
    const duration = s.durationUs;
    s.end();
    stop();
    assert.equal(ended.length, 1);
    assert.equal(s.durationUs, duration);
  });

  it('makes random, non-zero ids of the right length, every hex digit about as often as any other', () => {
    // 2000 spans use 48,000 random bytes: the pool behind the ids is refilled a few times on the way.
    const ids = new Set<string>();
    const digits = new Map<string, number>();
    for (let i = 0; i < 2000; i++) {
      const s = startSpan('id', { parent: null });
      assert.match(s.traceId, /^[0-9a-f]{32}$/);
      assert.match(s.spanId, /^[0-9a-f]{16}$/);
      ids.add(s.traceId);
      ids.add(s.spanId);
      for (const c of s.traceId + s.spanId) digits.set(c, (digits.get(c) ?? 0) + 1);
    }
    assert.equal(ids.size, 4000);
    assert.equal(digits.size, 16);
    // 96,000 digits, 6,000 expected each; a standard deviation is about 75.
    for (const [digit, count] of digits) assert.ok(Math.abs(count - 6000) < 600, `${digit} appeared ${count} times`);
  });

  it('creates no async resource while making ids, the pool behind them refilled included', () => {
    const created: string[] = [];
    const hook = createHook({ init: (_id, type) => created.push(type) }).enable();
    try {
      // 3,000 spans take 72,000 random bytes: four refills or more.
      for (let i = 0; i < 3000; i++) startSpan('id', { parent: null });
    } finally {
      hook.disable();
    }
    assert.deepEqual(created, []);
  });

  it('keeps a copy of the attributes it was given, and takes more after the start', () => {
    const given: Record<string, string | number> = { 'messaging.system': 'rabbitmq', n: 1 };
    const s = startSpan('copy', { attributes: given });
    given.n = 2;
    given.late = 'x';
    s.setAttribute('messaging.message.id', 'm-1');
    s.setAttributes({ 'messaging.destination.name': 'orders' });
    s.end();
    assert.deepEqual(s.attributes, { 'messaging.system': 'rabbitmq', n: 1, 'messaging.message.id': 'm-1', 'messaging.destination.name': 'orders' });
    assert.deepEqual(given, { 'messaging.system': 'rabbitmq', n: 2, late: 'x' });
  });

  it('never lets a __proto__ attribute reach the prototype of its attributes', () => {
    const hostile = JSON.parse('{"__proto__": ["polluted"], "ok": true}') as Record<string, boolean>;
    const s = startSpan('hostile', { attributes: hostile });
    s.setAttribute('__proto__', ['again']);
    s.end();
    assert.equal(Object.getPrototypeOf(s.attributes), Object.prototype);
    assert.deepEqual(Object.keys(s.attributes), ['ok']);
  });

  it('gives the same span context each time, child spans included', () => {
    const parent = startSpan('ctx-parent', { parent: extract({ traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03', tracestate: 'a=1' }) ?? null });
    const first = parent.spanContext();
    assert.equal(parent.spanContext(), first);
    assert.deepEqual({ ...first }, { traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: parent.spanId, traceFlags: 3, traceState: first.traceState, isRemote: false });
    assert.equal(first.traceState?.get('a'), '1');
    const child = startSpan('ctx-child', { parent: contextWithSpan(parent) });
    assert.equal(child.spanContext().traceFlags, 3);
    assert.equal(child.spanContext().traceState, first.traceState);
    assert.equal(child.parentSpanId, parent.spanId);
    child.end();
    parent.end();
  });
});

describe('sampling', () => {
  after(() => configure({ sampleRate: 1 }));

  it('respects a remote unsampled parent and still propagates its context', () => {
    const ended: SpanRecord[] = [];
    const stop = onSpanEnd((s) => ended.push(s));
    const parent = extract({ traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00' });
    const s = startSpan('unsampled', { parent: parent ?? null });
    assert.equal(s.isRecording(), false);
    assert.equal(s.traceId, '4bf92f3577b34da6a3ce929d0e0e4736');
    s.end();
    stop();
    assert.equal(ended.length, 0);
  });

  it('honours a B3 sampling-only decision for the new root', () => {
    const no = startSpan('b3-no', { parent: extract({ b3: '0' }) ?? null });
    const yes = startSpan('b3-yes', { parent: extract({ b3: '1' }) ?? null });
    assert.equal(no.isRecording(), false);
    assert.equal(yes.isRecording(), true);
    assert.equal(no.parentSpanId, undefined);
  });

  it('decides by trace id, the same way every time', () => {
    configure({ sampleRate: 0.5 });
    let sampled = 0;
    for (let i = 0; i < 2000; i++) if (startSpan('r', { parent: null }).isRecording()) sampled++;
    assert.ok(sampled > 800 && sampled < 1200, `about half sampled, got ${sampled}`);
    configure({ sampleRate: 0 });
    assert.equal(startSpan('never', { parent: null }).isRecording(), false);
    assert.throws(() => configure({ sampleRate: 2 }), RangeError);
  });

  it('takes readTextAsBytes as a boolean only', () => {
    assert.throws(() => configure({ readTextAsBytes: 'yes' as unknown as boolean }), /readTextAsBytes must be a boolean/);
    configure({ readTextAsBytes: true });
    const bytes = extract({ traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' });
    configure({ readTextAsBytes: false });
    const chars = extract({ traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' });
    assert.equal(trace.getSpanContext(bytes!)?.spanId, 'b7ad6b7169203331');
    assert.deepEqual(trace.getSpanContext(bytes!), trace.getSpanContext(chars!));
  });
});

describe('contexts', () => {
  const KEY = createContextKey('cyb.test.key');
  const OTHER = createContextKey('cyb.test.other');

  it('keep what the parent context holds and follow the Context contract', () => {
    const base = ROOT_CONTEXT.setValue(KEY, 'from the application');
    const s = startSpan('ctx', { parent: null });
    const ctx = contextWithSpan(s, base);
    assert.equal(trace.getSpan(ctx), s);
    assert.equal(ctx.getValue(KEY), 'from the application');
    const more = ctx.setValue(OTHER, 2);
    assert.equal(more.getValue(OTHER), 2);
    assert.equal(ctx.getValue(OTHER), undefined, 'setValue leaves the context it was called on unchanged');
    const without = more.deleteValue(KEY);
    assert.equal(without.getValue(KEY), undefined);
    assert.equal(more.getValue(KEY), 'from the application');
    assert.equal(trace.getSpan(without), s);
    assert.equal(trace.getSpan(trace.deleteSpan(ctx)), undefined);
    assert.equal(trace.getSpan(ctx), s);
    s.end();
  });

  it('are what the OpenTelemetry API sees as active', async () => {
    const s = startSpan('ctx-api', { parent: null });
    await withContext(contextWithSpan(s), async () => {
      await sleep(1);
      assert.equal(trace.getActiveSpan(), s);
      assert.equal(context.active().getValue(KEY), undefined);
    });
    s.end();
  });

  it('nest with OpenTelemetry SDK spans both ways, in one trace', () => {
    const memory = new InMemorySpanExporter();
    const tracer = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(memory)] }).getTracer('interop');
    const outer = startSpan('ours, outside', { parent: null });
    let inner: ReturnType<typeof startSpan> | undefined;
    withContext(contextWithSpan(outer), () => {
      tracer.startActiveSpan('sdk, in between', (sdkSpan) => {
        inner = startSpan('ours, inside');
        inner.end();
        sdkSpan.end();
      });
    });
    outer.end();
    const [sdkSpan] = memory.getFinishedSpans();
    assert.equal(sdkSpan?.spanContext().traceId, outer.traceId);
    assert.equal(sdkSpan?.parentSpanContext?.spanId, outer.spanId);
    assert.equal(inner?.traceId, outer.traceId);
    assert.equal(inner?.parentSpanId, sdkSpan?.spanContext().spanId);
  });

  it('read right through deep nesting, with every value set on the way', () => {
    const depth = 200;
    const seen: boolean[] = [];
    let ctx = ROOT_CONTEXT.setValue(KEY, 'root');
    const spans = [];
    for (let i = 0; i < depth; i++) {
      const s = startSpan(`level ${i}`, { parent: ctx });
      spans.push(s);
      ctx = contextWithSpan(s, ctx).setValue(OTHER, i);
    }
    for (let i = 1; i < depth; i++) seen.push(spans[i]?.parentSpanId === spans[i - 1]?.spanId);
    assert.deepEqual(seen, new Array(depth - 1).fill(true));
    assert.equal(trace.getSpan(ctx), spans[depth - 1]);
    assert.equal(ctx.getValue(KEY), 'root');
    assert.equal(ctx.getValue(OTHER), depth - 1);
    const deleted = ctx.deleteValue(KEY);
    let deeper = deleted;
    for (let i = 0; i < 40; i++) deeper = deeper.setValue(OTHER, -i);
    assert.equal(deeper.getValue(KEY), undefined, 'a deletion survives folding the chain');
    assert.equal(deeper.getValue(OTHER), -39);
    for (const s of spans) s.end();
  });
});
