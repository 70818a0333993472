// Bounded work on hostile carriers, counted rather than timed where it can be: every transport hands
// its headers to @cyb/core's extract(), so that is where the caps must hold. A list header of 10,000
// members is refused on its length without one member being read; a 10,000-member string is refused
// on its size; neither costs more than a short, valid one.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { extract, propagationStats } from '@cyb/core';
import { compactMembers, manyMembers, validTraceparent } from './hostile.js';

/** An array whose element reads are counted. */
function counted(items: string[]): { list: string[]; reads: () => number } {
  let reads = 0;
  const list = new Proxy(items, {
    get(target, key, receiver) {
      if (typeof key === 'string' && /^\d+$/.test(key)) reads++;
      return Reflect.get(target, key, receiver) as unknown;
    },
  });
  return { list, reads: () => reads };
}

/** Mean microseconds per call of `fn` over `n` calls, after a warm-up. */
function microsPerCall(fn: () => void, n = 2000): number {
  for (let i = 0; i < 200; i++) fn();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) fn();
  return Number(process.hrtime.bigint() - t0) / 1000 / n;
}

describe('extract() on hostile carriers does bounded work', () => {
  it('reads no member of a 10,000-member tracestate or baggage list, and keeps the parent', () => {
    const tracestate = counted(Array.from({ length: 10_000 }, (_, i) => `k${i}=v`));
    const baggage = counted(Array.from({ length: 10_000 }, (_, i) => `b${i}=v`));
    const before = propagationStats();
    const ctx = extract({ traceparent: validTraceparent(), tracestate: tracestate.list, baggage: baggage.list });
    assert.ok(ctx, 'the traceparent still gives a parent');
    assert.equal(tracestate.reads(), 0, 'tracestate members read');
    assert.equal(baggage.reads(), 0, 'baggage members read');
    assert.equal(propagationStats().invalidTracestate, before.invalidTracestate + 1);
  });

  it('reads each member of a list at most once, and stops at the size cap', () => {
    // 60 members of 200 characters: under the count cap, over the 8 KB size cap after about 40.
    const long = counted(Array.from({ length: 60 }, (_, i) => `k${i}=${'v'.repeat(200)}`));
    extract({ traceparent: validTraceparent(), tracestate: long.list });
    assert.ok(long.reads() <= 60, `read ${long.reads()} members of 60`);
    assert.ok(long.reads() < 60, 'stopped before the end once over the size cap');
  });

  it('a 10,000-member tracestate string costs no more than a valid 32-member one', (t) => {
    const traceparent = validTraceparent();
    const valid = { traceparent, tracestate: compactMembers(32) };
    const huge = { traceparent, tracestate: manyMembers(10_000) };
    const justUnder = { traceparent, tracestate: compactMembers(1400).slice(0, 8190) };
    const validCost = microsPerCall(() => void extract(valid));
    const hugeCost = microsPerCall(() => void extract(huge));
    const underCost = microsPerCall(() => void extract(justUnder));
    t.diagnostic(`extract(): 32 valid members ${validCost.toFixed(2)} µs, 10,000 members ${hugeCost.toFixed(2)} µs, 8 KB of members ${underCost.toFixed(2)} µs`);
    // Refused on its length before any parsing: cheaper than parsing 32 members, whatever its size.
    assert.ok(hugeCost < validCost * 3 + 5, `10,000 members ${hugeCost.toFixed(2)} µs vs 32 members ${validCost.toFixed(2)} µs`);
    // Just under the size cap, parsing stops at the 33rd member: bounded by the cap, not the input.
    assert.ok(underCost < 1000, `8 KB of members ${underCost.toFixed(2)} µs`);
  });
});
