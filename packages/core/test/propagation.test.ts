import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { propagation, ROOT_CONTEXT, trace, TraceFlags, type Context } from '@opentelemetry/api';
import fc from 'fast-check';
import { configure, contextWithSpan, defaultGetter, extract, inject, propagationStats, resetPropagationStats, SAMPLING_DECISION_KEY, startSpan } from '@cyb/core';

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN_ID = '00f067aa0ba902b7';
const VALID = `00-${TRACE_ID}-${SPAN_ID}-01`;

function parentOf(ctx: Context | undefined): { traceId: string; spanId: string; flags: number; state: string | undefined } | undefined {
  const sc = ctx && trace.getSpanContext(ctx);
  return sc && { traceId: sc.traceId, spanId: sc.spanId, flags: sc.traceFlags, state: sc.traceState?.serialize() };
}

/** What a service forwards for an incoming carrier: inject the context of a child span. */
function forward(incoming: Record<string, unknown>): Record<string, string> {
  const parent = extract(incoming);
  const child = startSpan('forward', { parent: parent ?? null });
  const out: Record<string, string> = {};
  inject(out, { context: contextWithSpan(child, parent) });
  child.end();
  return out;
}

describe('W3C Trace Context', () => {
  describe('extract()', () => {
    it('reads a valid version 00 traceparent with its flags', () => {
      assert.deepEqual(parentOf(extract({ traceparent: VALID })), { traceId: TRACE_ID, spanId: SPAN_ID, flags: 1, state: undefined });
    });

    it('trims optional white space', () => {
      assert.equal(parentOf(extract({ traceparent: ` \t${VALID}\t ` }))?.traceId, TRACE_ID);
    });

    const invalid: [string, string][] = [
      ['upper-case hex', VALID.toUpperCase()],
      ['version ff', `ff-${TRACE_ID}-${SPAN_ID}-01`],
      ['version 00 with trailing data', `${VALID}-what-the-future-will-be-like`],
      ['all-zero trace id', `00-${'0'.repeat(32)}-${SPAN_ID}-01`],
      ['all-zero parent id', `00-${TRACE_ID}-${'0'.repeat(16)}-01`],
      ['short trace id', `00-${TRACE_ID.slice(1)}-${SPAN_ID}-01`],
      ['non-hex flags', `00-${TRACE_ID}-${SPAN_ID}-0x`],
      ['wrong delimiter', `00_${TRACE_ID}-${SPAN_ID}-01`],
      ['future version glued to more data', `cc-${TRACE_ID}-${SPAN_ID}-01.what`],
      ['two values joined by a proxy', `${VALID}, 00-${TRACE_ID}-${SPAN_ID}-00`],
      ['empty', ''],
    ];
    for (const [what, value] of invalid) {
      it(`rejects ${what}`, () => {
        const before = propagationStats().invalidTraceparent;
        assert.equal(parentOf(extract({ traceparent: value })), undefined);
        assert.equal(propagationStats().invalidTraceparent, before + 1);
      });
    }

    it('accepts a future version leniently, reading the version 00 fields', () => {
      assert.equal(parentOf(extract({ traceparent: `cc-${TRACE_ID}-${SPAN_ID}-01-what-the-future-will-be-like` }))?.traceId, TRACE_ID);
      assert.equal(parentOf(extract({ traceparent: `cc-${TRACE_ID}-${SPAN_ID}-01` }))?.spanId, SPAN_ID);
    });

    it('treats a repeated traceparent as no parent', () => {
      assert.equal(extract({ traceparent: [VALID, VALID] }), undefined);
    });

    it('keeps a valid tracestate, joining repeated headers in order', () => {
      assert.equal(parentOf(extract({ traceparent: VALID, tracestate: ['foo=1', 'bar=2 '] }))?.state, 'foo=1,bar=2');
      assert.equal(parentOf(extract({ traceparent: VALID, tracestate: 'foo=1,,  bar=2' }))?.state, 'foo=1,bar=2');
      assert.equal(parentOf(extract({ traceparent: VALID, tracestate: 'tenant@vendor=x' }))?.state, 'tenant@vendor=x');
    });

    it('drops an invalid tracestate but keeps the parent', () => {
      for (const state of ['foo=1,foo=2', 'Foo=1', 'foo =1', 'foo=1=2=', 'foo', `k${'a'.repeat(256)}=1`, 'foo=bar,', 'foo=a\u00e9']) {
        const p = parentOf(extract({ traceparent: VALID, tracestate: state }));
        assert.equal(p?.traceId, TRACE_ID, state);
        if (state === 'foo=bar,') assert.equal(p?.state, 'foo=bar');
        else assert.equal(p?.state, undefined, state);
      }
    });

    it('allows 32 tracestate members and drops 33', () => {
      const members = (n: number): string => Array.from({ length: n }, (_, i) => `k${i}=v${i}`).join(',');
      assert.equal(parentOf(extract({ traceparent: VALID, tracestate: members(32) }))?.state?.split(',').length, 32);
      assert.equal(parentOf(extract({ traceparent: VALID, tracestate: members(33) }))?.state, undefined);
    });
  });

  describe('forwarding', () => {
    it('keeps the trace id, changes the parent id and keeps sampled and random flags and tracestate', () => {
      const out = forward({ traceparent: `00-${TRACE_ID}-${SPAN_ID}-03`, tracestate: 'foo=1,bar=2' });
      const [version, traceId, spanId, flags] = (out.traceparent ?? '').split('-');
      assert.equal(version, '00');
      assert.equal(traceId, TRACE_ID);
      assert.notEqual(spanId, SPAN_ID);
      assert.equal(flags, '03');
      assert.equal(out.tracestate, 'foo=1,bar=2');
    });

    it('keeps the unsampled decision', () => {
      const out = forward({ traceparent: `00-${TRACE_ID}-${SPAN_ID}-00` });
      assert.match(out.traceparent ?? '', new RegExp(`^00-${TRACE_ID}-[0-9a-f]{16}-00$`));
      assert.match(out.b3 ?? '', /-0$/);
    });

    it('starts a new trace, with the random flag, when traceparent is invalid', () => {
      const out = forward({ traceparent: `00-${TRACE_ID}-${SPAN_ID}-01-extra`, tracestate: 'foo=1' });
      assert.doesNotMatch(out.traceparent ?? '', new RegExp(TRACE_ID));
      assert.match(out.traceparent ?? '', /^00-[0-9a-f]{32}-[0-9a-f]{16}-03$/);
      assert.equal(out.tracestate, undefined);
    });
  });
});

describe('B3', () => {
  it('reads the single header with 128- and 64-bit trace ids and keeps 64-bit ids 64-bit', () => {
    assert.deepEqual(parentOf(extract({ b3: `${TRACE_ID}-${SPAN_ID}-1` })), { traceId: TRACE_ID, spanId: SPAN_ID, flags: TraceFlags.SAMPLED, state: undefined });
    const short = 'a3ce929d0e0e4736';
    assert.equal(parentOf(extract({ b3: `${short}-${SPAN_ID}-1-${'1'.repeat(16)}` }))?.traceId, `${'0'.repeat(16)}${short}`);
    const out = forward({ b3: `${short}-${SPAN_ID}-1` });
    assert.match(out.b3 ?? '', new RegExp(`^${short}-[0-9a-f]{16}-1$`));
  });

  it('handles sampling states 0, 1 and d, and debug through X-B3-Flags', () => {
    assert.equal(parentOf(extract({ b3: `${TRACE_ID}-${SPAN_ID}-0` }))?.flags, TraceFlags.NONE);
    assert.equal(parentOf(extract({ b3: `${TRACE_ID}-${SPAN_ID}-d` }))?.flags, TraceFlags.SAMPLED);
    assert.match(forward({ b3: `${TRACE_ID}-${SPAN_ID}-d` }).b3 ?? '', /-d$/);
    const multi = { 'x-b3-traceid': TRACE_ID, 'x-b3-spanid': SPAN_ID, 'x-b3-flags': '1' };
    assert.equal(parentOf(extract(multi))?.flags, TraceFlags.SAMPLED);
  });

  it('reads multi headers in any of their usual spellings', () => {
    assert.equal(parentOf(extract({ 'X-B3-TraceId': TRACE_ID, 'X-B3-SpanId': SPAN_ID, 'X-B3-Sampled': '1' }))?.spanId, SPAN_ID);
    assert.equal(parentOf(extract({ 'x-b3-traceid': TRACE_ID, 'x-b3-spanid': SPAN_ID, 'x-b3-sampled': '0' }))?.flags, TraceFlags.NONE);
  });

  it('lets the single header win over X-B3-*', () => {
    const other = 'b'.repeat(16);
    const p = parentOf(extract({ b3: `${TRACE_ID}-${SPAN_ID}-1`, 'x-b3-traceid': TRACE_ID, 'x-b3-spanid': other }));
    assert.equal(p?.spanId, SPAN_ID);
  });

  const bad = [
    ['upper case', `${TRACE_ID.toUpperCase()}-${SPAN_ID}-1`],
    ['short trace id', `${TRACE_ID.slice(2)}-${SPAN_ID}-1`],
    ['long trace id', `${TRACE_ID}ab-${SPAN_ID}-1`],
    ['all-zero trace id', `${'0'.repeat(32)}-${SPAN_ID}-1`],
    ['all-zero span id', `${TRACE_ID}-${'0'.repeat(16)}-1`],
    ['trailing junk', `${TRACE_ID}-${SPAN_ID}-1-${SPAN_ID}x`],
    ['bad sampling state', `${TRACE_ID}-${SPAN_ID}-2`],
    ['garbage', 'not-a-b3-header'],
  ];
  for (const [what, value] of bad) {
    it(`rejects ${what}`, () => {
      const before = propagationStats().invalidB3;
      assert.equal(parentOf(extract({ b3: value as string })), undefined);
      assert.equal(propagationStats().invalidB3, before + 1);
    });
  }

  it('injects multi headers when asked', () => {
    const s = startSpan('multi', { parent: null });
    const out: Record<string, string> = {};
    inject(out, { context: contextWithSpan(s), formats: ['b3multi'] });
    assert.equal(out['x-b3-traceid'], s.traceId);
    assert.equal(out['x-b3-spanid'], s.spanId);
    assert.equal(out['x-b3-sampled'], '1');
    assert.equal(out.traceparent, undefined);
  });
});

describe('carriers', () => {
  it('reads Buffer, Uint8Array and single-element array values', () => {
    assert.equal(parentOf(extract({ traceparent: Buffer.from(VALID) }))?.traceId, TRACE_ID);
    assert.equal(parentOf(extract({ traceparent: new TextEncoder().encode(VALID) }))?.traceId, TRACE_ID);
    assert.equal(parentOf(extract({ traceparent: [Buffer.from(VALID)] }))?.traceId, TRACE_ID);
    assert.equal(parentOf(extract(new Map([['traceparent', VALID]])))?.traceId, TRACE_ID);
  });

  it('reads a Buffer that is a slice of a larger one by its own bytes, never through its own toString', () => {
    const wire = Buffer.from(`xx${VALID}yy`);
    const slice = wire.subarray(2, 2 + VALID.length);
    assert.equal(parentOf(extract({ traceparent: slice }))?.traceId, TRACE_ID);
    const hostile = Buffer.from(VALID);
    let called = 0;
    Object.defineProperty(hostile, 'toString', {
      value: () => {
        called++;
        return `00-${'1'.repeat(32)}-${'2'.repeat(16)}-01`;
      },
    });
    assert.equal(parentOf(extract({ traceparent: hostile }))?.traceId, TRACE_ID);
    assert.equal(called, 0);
    // A view of part of an ArrayBuffer, not a Buffer: only the viewed bytes are read.
    const bytes = new TextEncoder().encode(`xx${VALID}yy`);
    assert.equal(parentOf(extract({ traceparent: bytes.subarray(2, 2 + VALID.length) }))?.traceId, TRACE_ID);
  });

  it('uses a getter and a setter for other carriers', () => {
    const headers = [{ key: 'traceparent', value: VALID }];
    const ctx = extract(headers, { getter: { get: (c, k) => c.find((h) => h.key === k)?.value } });
    assert.equal(parentOf(ctx)?.traceId, TRACE_ID);
    const written: [string, string][] = [];
    inject(written, { context: ctx, setter: { set: (c, k, v) => c.push([k, v]) } });
    assert.deepEqual(written.map(([k]) => k).sort(), ['b3', 'traceparent']);
  });

  it('carries baggage both ways', () => {
    const ctx = extract({ traceparent: VALID, baggage: 'user=alice,tier=gold' });
    assert.equal(ctx && propagation.getBaggage(ctx)?.getEntry('user')?.value, 'alice');
    const out: Record<string, string> = {};
    inject(out, { context: ctx });
    assert.match(out.baggage ?? '', /user=alice/);
  });

  it('does not read inherited properties such as __proto__ or constructor', () => {
    const hostile = JSON.parse(`{"__proto__": {"traceparent": "${VALID}"}, "constructor": {"b3": "1"}}`);
    assert.equal(extract(hostile), undefined);
    assert.equal(({} as Record<string, unknown>).traceparent, undefined);
  });
});

describe('properties', () => {
  const header = fc.oneof(
    fc.string({ maxLength: 200 }),
    fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a)),
    fc.array(fc.string({ maxLength: 80 }), { maxLength: 4 }),
    fc.constantFrom(VALID, `${TRACE_ID}-${SPAN_ID}-1`, '0', 'd'),
    fc.anything(),
  );
  const carrier = fc.record(
    {
      traceparent: header,
      tracestate: header,
      b3: header,
      'x-b3-traceid': header,
      'x-b3-spanid': header,
      'x-b3-sampled': header,
      'x-b3-flags': header,
      baggage: header,
    },
    { requiredKeys: [] },
  );

  it('extract never throws on arbitrary strings, Buffers, arrays and values', () => {
    fc.assert(
      fc.property(fc.oneof(carrier, fc.anything()), (c) => {
        const ctx = extract(c);
        assert.ok(ctx === undefined || typeof ctx.getValue === 'function');
      }),
      { numRuns: 3000 },
    );
  });

  it('reads a carrier the same whether or not it takes the quick path for carriers without trace headers', () => {
    // The default getter lets extract() settle a carrier holding none of the headers it reads with a
    // few property reads. A getter that only forwards to it always takes the full path: both must
    // give the same parent, the same sampling decision and the same counts, for every header name in
    // either spelling, with unrelated headers and polluted-looking keys around. (Baggage entries are
    // compared by their text: each parse makes its metadata object anew.)
    const forwarding = { get: (c: unknown, k: string) => defaultGetter.get(c, k) };
    // Every name the full path looks up, taken from the full path itself (carriers that record the
    // own-property lookups the default getter makes), so a name added there is tested here too.
    const looked = new Set<string>();
    const recording = (target: object): object =>
      new Proxy(target, {
        getOwnPropertyDescriptor: (t, key) => {
          if (typeof key === 'string') looked.add(key);
          return Reflect.getOwnPropertyDescriptor(t, key);
        },
      });
    for (const target of [{}, { traceparent: VALID }]) extract(recording(target), { formats: ['w3c', 'b3', 'b3multi'], getter: forwarding });
    assert.ok(looked.has('tracestate') && looked.has('X-B3-ParentSpanId') && looked.has('baggage'));
    const names = [...looked, 'host', 'user-agent', 'constructor', 'toString'];
    const value = fc.oneof(header, fc.constantFrom(TRACE_ID, SPAN_ID, '1', 'true', 'k=v', undefined));
    const headers = fc.dictionary(fc.constantFrom(...names), value, { maxKeys: 4 });
    const formats = fc.constantFrom<readonly ('w3c' | 'b3' | 'b3multi')[]>(['w3c', 'b3', 'b3multi'], ['w3c'], ['b3'], ['b3multi'], ['b3multi', 'w3c']);
    const read = (c: Record<string, unknown>, f: readonly ('w3c' | 'b3' | 'b3multi')[], getter?: typeof forwarding) => {
      resetPropagationStats();
      const ctx = extract(c, { formats: f, getter });
      return { parent: parentOf(ctx), sampling: ctx?.getValue(SAMPLING_DECISION_KEY), baggage: ctx && propagation.getBaggage(ctx)?.getAllEntries().map(([k, e]) => [k, e.value, e.metadata?.toString()]), stats: propagationStats() };
    };
    fc.assert(
      fc.property(headers, formats, (c, f) => {
        assert.deepEqual(read(c, f), read(c, f, forwarding));
      }),
      { numRuns: 3000 },
    );
    assert.equal(read({ host: 'example.com' }, ['w3c', 'b3', 'b3multi']).stats.missing, 1);
  });

  it('accepts a 55-character version 00 traceparent exactly when the W3C grammar does', () => {
    // The specification's grammar for version 00, written out here as the reference: lower-case hex
    // fields separated by dashes, and neither id all zeros.
    const grammar = /^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$/;
    const accepted = (value: string): boolean => {
      const m = grammar.exec(value);
      return m !== null && !/^0+$/.test(m[1] as string) && !/^0+$/.test(m[2] as string);
    };
    // Valid headers with one to three characters after the version replaced: digits, upper-case hex,
    // dashes, letters past f, zeros (all-zero ids), white space and characters beyond ASCII. (Other
    // versions read leniently, as the tests above show.)
    // Among them characters whose low byte is a hex digit or a dash (U+0130, U+0161, U+022D), and a
    // lone surrogate: a check that read Latin-1 bytes would take those for '0', 'a' and '-'.
    const replacement = fc.constantFrom('0', '9', 'a', 'f', 'A', 'F', 'g', '-', ' ', '\u00e9', '\u2603', 'z', '/', ':', '`', '@', '\u0130', '\u0161', '\u022d', '\ud800');
    const mutated = fc
      .tuple(fc.constantFrom(VALID, `00-${'0'.repeat(32)}-${SPAN_ID}-01`, `00-${TRACE_ID}-${'0'.repeat(16)}-00`), fc.array(fc.tuple(fc.integer({ min: 2, max: 54 }), replacement), { minLength: 1, maxLength: 3 }))
      .map(([base, edits]) => {
        const chars = [...base];
        for (const [at, c] of edits) chars[at] = c;
        return chars.join('');
      });
    // Both ways of reading the characters: charCodeAt, and bytes from the scratch buffer.
    for (const readTextAsBytes of [false, true]) {
      configure({ readTextAsBytes });
      try {
        fc.assert(
          fc.property(mutated, (value) => {
            assert.equal(parentOf(extract({ traceparent: value }, { formats: ['w3c'] })) !== undefined, accepted(value), `${value} (bytes: ${readTextAsBytes})`);
          }),
          { numRuns: 5000 },
        );
      } finally {
        configure({ readTextAsBytes: false });
      }
    }
  });

  it('extract(inject(ctx)) gives back the same trace, span and sampled flag', () => {
    const hex = (n: number): fc.Arbitrary<string> =>
      fc.stringMatching(new RegExp(`^[0-9a-f]{${n}}$`)).filter((s) => !/^0+$/.test(s));
    fc.assert(
      fc.property(hex(32), hex(16), fc.boolean(), fc.constantFrom<readonly ('w3c' | 'b3' | 'b3multi')[]>(['w3c'], ['b3'], ['b3multi']), (traceId, spanId, sampled, formats) => {
        const sc = { traceId, spanId, traceFlags: sampled ? 1 : 0, isRemote: true };
        const ctx = trace.setSpanContext(ROOT_CONTEXT, sc);
        const carrierOut: Record<string, string> = {};
        inject(carrierOut, { context: ctx, formats });
        const back = parentOf(extract(carrierOut, { formats }));
        assert.equal(back?.traceId, traceId);
        assert.equal(back?.spanId, spanId);
        assert.equal((back?.flags ?? 0) & 1, sampled ? 1 : 0);
      }),
      { numRuns: 1000 },
    );
  });
});

describe('inject() of span contexts it did not make', () => {
  const foreign = (traceId: string, spanId: string, traceFlags = 1): Context =>
    trace.setSpanContext(ROOT_CONTEXT, { traceId, spanId, traceFlags, isRemote: false });

  it('writes an OpenTelemetry SDK span context with valid ids, flags as two hex digits', () => {
    const out: Record<string, string> = {};
    inject(out, { context: foreign(TRACE_ID, SPAN_ID, 0x13) });
    assert.equal(out.traceparent, `00-${TRACE_ID}-${SPAN_ID}-13`);
    assert.equal(out.b3, `${TRACE_ID}-${SPAN_ID}-1`);
  });

  const bad: [string, string, string][] = [
    ['upper-case trace id', TRACE_ID.toUpperCase(), SPAN_ID],
    ['all-zero trace id', '0'.repeat(32), SPAN_ID],
    ['short span id', TRACE_ID, SPAN_ID.slice(1)],
    ['non-hex span id', TRACE_ID, 'zz'.repeat(8)],
  ];
  for (const [what, traceId, spanId] of bad) {
    it(`writes nothing for a ${what}`, () => {
      const out: Record<string, string> = {};
      inject(out, { context: foreign(traceId, spanId), formats: ['w3c', 'b3', 'b3multi'] });
      assert.deepEqual(out, {});
    });
  }

  it('forwards a debug request as debug in both B3 forms, whichever form it came in', () => {
    for (const incoming of [{ b3: `${TRACE_ID}-${SPAN_ID}-d` }, { 'x-b3-traceid': TRACE_ID, 'x-b3-spanid': SPAN_ID, 'x-b3-flags': '1' }]) {
      const parent = extract(incoming);
      const child = startSpan('forward', { parent: parent ?? null });
      const out: Record<string, string> = {};
      inject(out, { context: contextWithSpan(child, parent), formats: ['b3', 'b3multi'] });
      child.end();
      assert.equal(out.b3, `${TRACE_ID}-${child.spanId}-d`);
      assert.equal(out['x-b3-flags'], '1');
      assert.equal(out['x-b3-sampled'], undefined);
    }
  });
});
