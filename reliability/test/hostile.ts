// Generators of hostile trace headers, shared by the transport tests: arbitrary bytes and text, huge
// values, tracestate lists of thousands of members, ids that are almost right, and keys aimed at
// prototypes. Every transport carries them its own way; what a tracer must do with them is the same.
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';

export const hex = (bytes: number): string => randomBytes(bytes).toString('hex');

const hexText = (maxLength: number): fc.Arbitrary<string> =>
  fc.string({ unit: fc.constantFrom(...'0123456789abcdefABCDEF'), maxLength });

/** A well-formed W3C traceparent. */
export function validTraceparent(traceId = hex(16), spanId = hex(8)): string {
  return `00-${traceId}-${spanId}-01`;
}

/** The trace and span ids of a well-formed version-00 traceparent, or undefined. */
export function parseTraceparent(value: string): { traceId: string; spanId: string } | undefined {
  const m = /^[ \t]*00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}[ \t]*$/.exec(value);
  if (!m || /^0+$/.test(m[1]!) || /^0+$/.test(m[2]!)) return undefined;
  return { traceId: m[1]!, spanId: m[2]! };
}

/** `n` tracestate members, `k0=v0,k1=v1,...`: well-formed each, far too many together. */
export function manyMembers(n: number): string {
  const members = new Array<string>(n);
  for (let i = 0; i < n; i++) members[i] = `k${i}=v${i}`;
  return members.join(',');
}

/** `n` distinct, well-formed members in as few bytes as they fit (letter keys, `=1`): for 64 KB tables. */
export function compactMembers(n: number): string {
  const members = new Array<string>(n);
  for (let i = 0; i < n; i++) {
    let key = '';
    for (let v = i; ; v = Math.floor(v / 26) - 1) {
      key = String.fromCharCode(97 + (v % 26)) + key;
      if (v < 26) break;
    }
    members[i] = `${key}=1`;
  }
  return members.join(',');
}

/** Names a tracer reads, in any case, and names aimed at prototypes. */
export const TRACE_KEYS = [
  'traceparent', 'tracestate', 'b3', 'baggage', 'x-b3-traceid', 'x-b3-spanid', 'x-b3-parentspanid', 'x-b3-sampled', 'x-b3-flags',
  'Traceparent', 'TRACESTATE', 'B3', 'X-B3-TraceId', 'X-B3-SpanId', 'X-B3-Sampled', 'X-B3-Flags',
];
export const PROTO_KEYS = ['__proto__', 'constructor', 'prototype', 'hasOwnProperty', 'toString', 'valueOf', 'polluted'];

/** A traceparent that is right, almost right, or nothing like it. */
export const traceparentText: fc.Arbitrary<string> = fc.oneof(
  fc.constant(null).map(() => validTraceparent()),
  fc.tuple(fc.constantFrom('00', 'ff', '01', 'zz', '0'), hexText(40), hexText(20), fc.string({ maxLength: 4 }))
    .map(([v, t, s, f]) => `${v}-${t}-${s}-${f}`),
  fc.constant(null).map(() => `00-${'0'.repeat(32)}-${hex(8)}-01`),
  fc.constant(null).map(() => `00-${hex(16).toUpperCase()}-${hex(8)}-01`),
  fc.constant(null).map(() => `${validTraceparent()}-${'x'.repeat(60)}`),
  fc.string({ maxLength: 80 }),
);

/** Text that could be any header value: binary, unicode, huge, thousands of members, ids. */
export const hostileText: fc.Arbitrary<string> = fc.oneof(
  { arbitrary: fc.string({ unit: 'binary', maxLength: 200 }), weight: 3 },
  { arbitrary: fc.string({ unit: 'grapheme', maxLength: 60 }), weight: 2 },
  { arbitrary: traceparentText, weight: 3 },
  { arbitrary: fc.integer({ min: 0, max: 12_000 }).map(manyMembers), weight: 2 },
  { arbitrary: fc.integer({ min: 8_000, max: 200_000 }).map((n) => 'a'.repeat(n)), weight: 1 },
  { arbitrary: fc.constantFrom('{"polluted":true}', '{"__proto__":{"polluted":true}}', 'constructor', '__proto__', ''), weight: 1 },
);

/** A header name: one a tracer reads, one aimed at prototypes, or anything. */
export const hostileKey: fc.Arbitrary<string> = fc.oneof(
  { arbitrary: fc.constantFrom(...TRACE_KEYS), weight: 4 },
  { arbitrary: fc.constantFrom(...PROTO_KEYS), weight: 2 },
  { arbitrary: fc.string({ minLength: 1, maxLength: 20 }), weight: 1 },
);

/** A list of hostile header name/value pairs (names may repeat). */
export const hostileHeaderList: fc.Arbitrary<[string, string][]> = fc.array(fc.tuple(hostileKey, hostileText), { minLength: 0, maxLength: 8 });
