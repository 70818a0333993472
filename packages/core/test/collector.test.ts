import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Collector, configure, contextWithSpan, extract, span, startSpan, type SpanRecord } from '@cyb/core';

function endedRoot(name = 'r'): SpanRecord {
  const s = startSpan(name, { parent: null });
  s.end();
  return s;
}

describe('Collector', () => {
  it('groups finished spans by trace id while started, and not after stop()', () => {
    const c = new Collector().start();
    span('a', {}, () => span('b', {}, () => undefined));
    span('c', {}, () => undefined);
    c.stop();
    span('after-stop', {}, () => undefined);
    const traces = c.traces();
    assert.equal(traces.length, 2);
    assert.deepEqual(traces.map((t) => t.spans.map((s) => s.name)), [['a', 'b'], ['c']]);
    assert.deepEqual(c.stats(), { traces: 2, spans: 3, evictedTraces: 0, droppedSpans: 0, sampledOut: 0 });
  });

  it('evicts the least recently active trace first and counts it', () => {
    const c = new Collector({ maxTraces: 3 });
    const [a, b, d, e] = [endedRoot('a'), endedRoot('b'), endedRoot('d'), endedRoot('e')];
    c.add(a);
    c.add(b);
    c.add(d);
    const aChild = startSpan('a2', { parent: undefined });
    c.add({ ...aChild.toJSON(), traceId: a.traceId }); // activity on a: b is now the oldest
    c.add(e);
    assert.deepEqual(c.traces().map((t) => t.traceId), [d.traceId, a.traceId, e.traceId]);
    assert.equal(c.stats().evictedTraces, 1);
    assert.equal(c.stats().spans, 4);
  });

  it('drops spans beyond maxSpansPerTrace and counts them', () => {
    const c = new Collector({ maxSpansPerTrace: 5 });
    const root = endedRoot();
    for (let i = 0; i < 12; i++) c.add({ ...root, spanId: i.toString(16).padStart(16, '1') });
    assert.equal(c.traces()[0]?.spans.length, 5);
    assert.equal(c.stats().droppedSpans, 7);
  });

  it('keeps the first span of a trace and drops the rest when maxSpansPerTrace is 1', () => {
    const c = new Collector({ maxSpansPerTrace: 1, maxTraces: 2 });
    const [a, b] = [endedRoot('a'), endedRoot('b')];
    c.add(a);
    c.add({ ...a, spanId: '1111111111111111' });
    c.add(b);
    c.add({ ...a, spanId: '2222222222222222' }); // a is active again, though its span is dropped
    const third = endedRoot('c');
    c.add(third); // evicts b, the least recently active
    assert.deepEqual(c.traces().map((t) => t.spans.map((s) => s.spanId)), [[a.spanId], [third.spanId]]);
    assert.deepEqual(c.stats(), { traces: 2, spans: 2, evictedTraces: 1, droppedSpans: 2, sampledOut: 0 });
  });

  it('samples by trace id, the same decision every time, counting distinct traces', () => {
    const c = new Collector({ sampleRate: 0.25 });
    const other = new Collector({ sampleRate: 0.25 });
    const roots = Array.from({ length: 400 }, () => endedRoot());
    for (const r of roots) {
      c.add(r);
      c.add(r); // a second span of the same trace counts once
      other.add(r);
    }
    const kept = c.stats().traces;
    assert.ok(kept > 50 && kept < 150, `about a quarter kept, got ${kept}`);
    assert.equal(c.stats().sampledOut, 400 - kept);
    assert.deepEqual(c.traces().map((t) => t.traceId), other.traces().map((t) => t.traceId));
  });

  it('clear() forgets traces and counters', () => {
    const c = new Collector({ maxTraces: 1 });
    c.add(endedRoot());
    c.add(endedRoot());
    c.clear();
    assert.deepEqual(c.stats(), { traces: 0, spans: 0, evictedTraces: 0, droppedSpans: 0, sampledOut: 0 });
  });

  it('rejects nonsense limits at construction, and a span without a string trace id', () => {
    assert.throws(() => new Collector({ maxTraces: 0 }), RangeError);
    assert.throws(() => new Collector({ maxSpansPerTrace: 1.5 }), RangeError);
    assert.throws(() => new Collector({ sampleRate: -1 }), RangeError);
    const c = new Collector();
    assert.throws(() => c.add({ ...endedRoot(), traceId: undefined as unknown as string }), /traceId must be a string, got undefined/);
    assert.deepEqual(c.stats().traces, 0);
  });

  it('matches a plain least-recently-active model under random traffic, across growth and eviction', () => {
    // A Map re-inserted on every activity is the reference: its iteration order is recency order.
    let seed = 7;
    const random = (n: number): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed % n;
    };
    // Ids a network could send: hex, upper case, short, empty, long, and near neighbours; ids beyond
    // ASCII and lone surrogates (always read with charCodeAt), and lengths on either side of the 85
    // characters that may be read as bytes from the scratch buffer.
    const odd = ['\u0130'.repeat(32), '\u0161'.repeat(32), 'x\ud800', 'x\udc00', '\u2603\ud83d\ude00', 'a'.repeat(85), 'a'.repeat(86), `${'b'.repeat(84)}\u00e9`, `${'b'.repeat(85)}\u00e9`];
    const pool = Array.from({ length: 300 }, (_, i) => {
      if (i % 25 === 3) return odd[((i / 25) | 0) % odd.length] as string;
      if (i % 50 === 0) return '';
      if (i % 7 === 0) return `trace-${i}`;
      if (i % 11 === 0) return 'f'.repeat(31) + (i % 10).toString() + 'x'.repeat(i);
      return i.toString(16).padStart(32, i % 3 === 0 ? 'A' : '0');
    });
    // Both ways of reading the characters (charCodeAt, bytes from the scratch buffer), and a switch
    // between them halfway through each run: a trace id must hash alike either way.
    for (const [maxTraces, maxSpansPerTrace, bytesFirst] of [[1, 1, false], [2, 3, true], [3, 2, false], [63, 4, true], [64, 5, false], [65, 3, true], [130, 2, false], [1000, 50, true]] as const) {
      configure({ readTextAsBytes: bytesFirst });
      const c = new Collector({ maxTraces, maxSpansPerTrace });
      const model = new Map<string, string[]>();
      let evicted = 0;
      let dropped = 0;
      let held = 0;
      for (let step = 0; step < 6000; step++) {
        if (step === 3000) configure({ readTextAsBytes: !bytesFirst });
        // Favour a few hot ids so traces are re-activated, not only evicted.
        const traceId = pool[random(4) === 0 ? random(8) : random(pool.length)] as string;
        const spanId = step.toString(16).padStart(16, '0');
        c.add({ ...endedRoot(), traceId, spanId, timestamp: step });
        const spans = model.get(traceId);
        if (spans === undefined) {
          model.set(traceId, [spanId]);
          held++;
          if (model.size > maxTraces) {
            const [oldest, oldSpans] = model.entries().next().value as [string, string[]];
            model.delete(oldest);
            held -= oldSpans.length;
            evicted++;
          }
          continue;
        }
        model.delete(traceId);
        model.set(traceId, spans);
        if (spans.length >= maxSpansPerTrace) dropped++;
        else {
          spans.push(spanId);
          held++;
        }
      }
      const label = `maxTraces ${maxTraces}`;
      assert.deepEqual(
        c.traces().map((t) => [t.traceId, t.spans.map((s) => s.spanId)]),
        [...model].map(([id, spans]) => [id, spans]),
        label,
      );
      assert.deepEqual(c.stats(), { traces: model.size, spans: held, evictedTraces: evicted, droppedSpans: dropped, sampledOut: 0 }, label);
      for (const id of pool) assert.deepEqual(c.trace(id)?.map((s) => s.spanId), model.get(id), `${label}, trace ${JSON.stringify(id)}`);
      c.clear();
      assert.equal(c.trace(pool[1] as string), undefined);
      c.add({ ...endedRoot(), traceId: pool[1] as string });
      assert.deepEqual(c.stats(), { traces: 1, spans: 1, evictedTraces: 0, droppedSpans: 0, sampledOut: 0 }, `${label}, after clear`);
    }
    configure({ readTextAsBytes: false });
  });

  it('files spans of one trace together, whether the trace id was made here, inherited, extracted or decoded', () => {
    // A trace id made here is hashed from its bytes as it is made; every other span of the trace is
    // hashed from the id's characters (or takes its parent's hash). All four must meet in one trace.
    for (const readTextAsBytes of [false, true]) {
      configure({ readTextAsBytes });
      const c = new Collector({ maxTraces: 5000 }).start();
      const roots = Array.from({ length: 500 }, () => startSpan('root', { parent: null }));
      for (const root of roots) {
        startSpan('child', { parent: contextWithSpan(root) }).end();
        const remote = extract({ traceparent: `00-${root.traceId}-${root.spanId}-01` });
        startSpan('remote child', { parent: remote ?? null }).end();
        root.end();
      }
      c.stop();
      for (const root of roots) c.add({ ...endedRoot('root'), traceId: root.traceId, spanId: 'decoded' });
      assert.equal(c.stats().traces, roots.length, `bytes: ${readTextAsBytes}`);
      for (const root of roots) {
        assert.deepEqual(c.trace(root.traceId)?.map((s) => s.name).sort(), ['child', 'remote child', 'root', 'root'].sort(), `bytes: ${readTextAsBytes}`);
      }
    }
    configure({ readTextAsBytes: false });
  });

  it('stays bounded under a flood of 200,000 spans', () => {
    const c = new Collector().start();
    for (let i = 0; i < 200_000; i++) startSpan('flood', { parent: null }).end();
    c.stop();
    const stats = c.stats();
    assert.equal(stats.traces, 1000);
    assert.equal(stats.spans, 1000);
    assert.equal(stats.evictedTraces, 199_000);
  });
});
