// Hostile Redis input from a plain ioredis client: pub/sub payloads that are, almost are, or pretend
// to be envelopes (bad JSON, oversized or prototype-laden headers, other versions), and stream entries
// with hostile field names and values. The traced subscriber and consumeStream must deliver exactly
// what the envelope format and the reserved field names say, never throw, never pollute.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { Redis } from 'ioredis';
import { Collector, propagationStats, type SpanRecord } from '@cyb/core';
import { consumeStream, redisTracingStats, traceRedis, type StreamConsumer, type StreamEntry } from '@cyb/redis';
import { REDIS_URL, assertPrototypeClean, prototypeSnapshot, uniqueName, waitUntil } from './helpers.js';
import { PROTO_KEYS, hex, hostileKey, hostileText, manyMembers, parseTraceparent, validTraceparent } from './hostile.js';

const MAGIC = Buffer.from('\u0000cyb1', 'latin1');
const HEADER_LIMIT = 4096;
const RESERVED = new Set(['traceparent', 'tracestate', 'baggage', 'b3', 'x-b3-traceid', 'x-b3-spanid', 'x-b3-parentspanid', 'x-b3-sampled', 'x-b3-flags']);

/**
 * What a traced subscriber must hand its listeners, read off the envelope format in @cyb/redis's
 * README (not its code): magic `00 63 79 62 31`, a JSON object of at most 4096 bytes, a newline, the
 * payload. Anything else passes through as it came.
 */
function expectedPayload(message: Buffer): { payload: Buffer; header: Record<string, unknown> | undefined } {
  if (message.length < MAGIC.length || !message.subarray(0, MAGIC.length).equals(MAGIC)) return { payload: message, header: undefined };
  const end = message.indexOf(0x0a, MAGIC.length);
  if (end < 0 || end - MAGIC.length > HEADER_LIMIT) return { payload: message, header: undefined };
  let header: unknown;
  try {
    header = JSON.parse(message.toString('utf8', MAGIC.length, end));
  } catch {
    return { payload: message, header: undefined };
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) return { payload: message, header: undefined };
  return { payload: message.subarray(end + 1), header: header as Record<string, unknown> };
}

/** JSON text of an object with these own keys (`__proto__` included, as JSON allows). */
function jsonObject(pairs: [string, unknown][]): string {
  return `{${pairs.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`).join(',')}}`;
}

const bytes = (max: number): fc.Arbitrary<Buffer> => fc.uint8Array({ maxLength: max }).map((b) => Buffer.from(b));
const headerPairs = fc.array(
  fc.tuple(fc.oneof(hostileKey, fc.constantFrom(...PROTO_KEYS)), fc.oneof(hostileText, fc.constantFrom<unknown>({ polluted: true }, 42, null, ['x']))),
  { maxLength: 6 },
);

/** Payloads on the wire: plain bytes, envelopes, and everything in between. */
const wirePayload: fc.Arbitrary<Buffer> = fc.oneof(
  bytes(300),
  bytes(300).map((b) => Buffer.concat([MAGIC, b])),
  fc.tuple(fc.option(fc.constant(null).map(() => validTraceparent()), { freq: 2 }), headerPairs, bytes(300)).map(([tp, pairs, body]) =>
    Buffer.concat([MAGIC, Buffer.from(jsonObject(tp === null ? pairs : [['traceparent', tp], ...pairs]), 'utf8'), Buffer.from('\n'), body])),
  fc.tuple(fc.constantFrom('[1,2]', 'null', '"x"', '{"a":', '{}', `{"traceparent":"${'a'.repeat(5000)}"}`, `{"tracestate":"${manyMembers(300)}"}`), bytes(50))
    .map(([head, body]) => Buffer.concat([MAGIC, Buffer.from(head, 'utf8'), Buffer.from('\n'), body])),
  bytes(100).map((b) => Buffer.concat([Buffer.from('\u0000cyb2{}\n', 'latin1'), b])),
);

describe('hostile Redis input from a plain client', () => {
  const collector = new Collector({ maxTraces: 5000, maxSpansPerTrace: 5 });
  const proto = prototypeSnapshot();
  let publisher: Redis;
  let tracedSub: Redis;
  let plainSub: Redis;
  const channel = uniqueName('redis-hostile');
  const stream = uniqueName('redis-hostile-stream');
  const got = { tracedBuffer: [] as Buffer[], tracedText: [] as string[], plain: [] as Buffer[] };

  before(async () => {
    collector.start();
    publisher = new Redis(REDIS_URL);
    tracedSub = traceRedis(new Redis(REDIS_URL));
    plainSub = new Redis(REDIS_URL);
    tracedSub.on('messageBuffer', (_c: Buffer, m: Buffer) => void got.tracedBuffer.push(m));
    tracedSub.on('message', (_c: string, m: string) => void got.tracedText.push(m));
    plainSub.on('messageBuffer', (_c: Buffer, m: Buffer) => void got.plain.push(m));
    await Promise.all([tracedSub.subscribe(channel), plainSub.subscribe(channel)]);
  });

  after(async () => {
    collector.stop();
    await publisher.del(stream);
    await Promise.all([publisher.quit(), tracedSub.quit(), plainSub.quit()]);
  });

  it('pub/sub: every payload delivered as the envelope format says, no stranger adopted, no pollution', async (t) => {
    const seen = { enveloped: 0, passedThrough: 0, continued: 0 };
    const failuresBefore = redisTracingStats().failures;
    await fc.assert(
      fc.asyncProperty(wirePayload, async (message) => {
        got.tracedBuffer.length = 0;
        got.tracedText.length = 0;
        got.plain.length = 0;
        collector.clear();
        await publisher.publish(channel, message);
        await waitUntil(() => got.tracedBuffer.length === 1 && got.tracedText.length === 1 && got.plain.length === 1, 'the message at both subscribers', 3000, 1);
        const { payload, header } = expectedPayload(message);
        assert.deepEqual(got.plain[0], message, 'the untraced subscriber gets the bytes as published');
        assert.deepEqual(got.tracedBuffer[0], payload, 'the traced subscriber gets what the format says');
        if (header === undefined) {
          seen.passedThrough++;
          assert.equal(got.tracedText[0], message.toString('utf8'));
        } else {
          seen.enveloped++;
        }
        assertPrototypeClean(proto);
        // Two CONSUMER spans (message and messageBuffer); a parent only if the header named it.
        let spans: SpanRecord[] = [];
        await waitUntil(() => (spans = collector.traces().flatMap((x) => x.spans).filter((s) => s.kind === 'consumer')).length === 2, 'two consumer spans', 3000, 1);
        // Header names are read case-insensitively; a context is required only when one of them names traceparent.
        const named = header === undefined ? [] : Object.keys(header).filter((k) => k.toLowerCase() === 'traceparent');
        const tp = named.length === 1 && typeof header![named[0]!] === 'string' ? parseTraceparent(header![named[0]!] as string) : undefined;
        for (const s of spans) {
          if (s.parentSpanId !== undefined) {
            seen.continued++;
            assert.ok(message.includes(s.parentSpanId), `parent ${s.parentSpanId} was named by the envelope`);
          }
          if (tp !== undefined) {
            assert.equal(s.traceId, tp.traceId, 'a well-formed traceparent in a well-formed envelope is continued');
            assert.equal(s.parentSpanId, tp.spanId);
          }
        }
      }),
      { numRuns: 200 },
    );
    t.diagnostic(`unwrapped ${seen.enveloped}, passed through ${seen.passedThrough}, consumer spans continuing a sent parent ${seen.continued}`);
    assert.ok(seen.enveloped > 0 && seen.passedThrough > 0 && seen.continued > 0, JSON.stringify(seen));
    assert.equal(redisTracingStats().failures, failuresBefore);
  });

  it('streams: any field names and values reach the handler as the reserved names say, no pollution', async (t) => {
    const entries = new Map<string, StreamEntry<Buffer>>();
    const failuresBefore = redisTracingStats().failures;
    const client = traceRedis(new Redis(REDIS_URL));
    const consumer: StreamConsumer = consumeStream(client, {
      streams: { [stream]: '0' },
      buffers: true,
      block: 100,
      handler: (entry) => void entries.set(entry.id, entry),
    });
    await consumer.ready;
    let continued = 0;
    try {
      const fieldValue = fc.oneof(hostileText.map((s) => Buffer.from(s, 'utf8')), bytes(100));
      const fieldName = fc.oneof(hostileKey, fc.constantFrom(...PROTO_KEYS), fc.constantFrom('TraceParent', 'X-B3-TRACEID', 'b3 ', 'traceparent2'));
      await fc.assert(
        fc.asyncProperty(fc.option(fc.constant(null).map(() => validTraceparent()), { freq: 3 }), fc.array(fc.tuple(fieldName, fieldValue), { minLength: 1, maxLength: 8 }), async (tp, pairs) => {
          const list = tp === null ? pairs : [['traceparent', Buffer.from(tp)] as [string, Buffer], ...pairs];
          const id = (await publisher.xadd(stream, '*', ...list.flat())) as string;
          await waitUntil(() => entries.has(id), `entry ${id} handled`, 3000, 1);
          const entry = entries.get(id)!;
          const expectedList: Buffer[] = [];
          const traceNames: string[] = [];
          for (const [name, value] of list) {
            if (RESERVED.has(name.toLowerCase())) traceNames.push(name.toLowerCase());
            else expectedList.push(Buffer.from(name, 'utf8'), value);
          }
          assert.deepEqual(entry.fieldList, expectedList, 'the application fields, in order, bytes intact');
          assert.deepEqual(Object.keys(entry.traceFields).sort(), [...new Set(traceNames)].sort());
          assert.equal(Object.getPrototypeOf(entry.fields), null, 'fields is a record without prototype');
          for (let i = 0; i < expectedList.length; i += 2) assert.ok(Object.hasOwn(entry.fields, expectedList[i]!.toString('utf8')));
          assertPrototypeClean(proto);
          const s = collector.traces().flatMap((x) => x.spans).find((x) => x.attributes['messaging.message.id'] === id && x.kind === 'consumer');
          assert.ok(s, `a process span for ${id}`);
          if (s.parentSpanId !== undefined) {
            continued++;
            assert.ok(list.some(([, v]) => v.includes(s.parentSpanId!)), 'parent named by the fields');
          }
          const traceparents = list.filter(([n]) => n.toLowerCase() === 'traceparent');
          const sent = traceparents.length === 1 ? parseTraceparent(traceparents[0]![1].toString('latin1')) : undefined;
          if (sent && traceparents[0]![0] === 'traceparent') assert.equal(s.parentSpanId, sent.spanId, 'a single well-formed traceparent is continued');
        }),
        { numRuns: 150 },
      );
    } finally {
      await consumer.stop();
      await client.quit();
    }
    t.diagnostic(`150 entries, ${continued} continuing a sent parent`);
    assert.ok(continued > 0);
    assert.equal(redisTracingStats().failures, failuresBefore);
  });

  it('10,000 tracestate members in an envelope and in a stream entry: the parent kept, the tracestate dropped', async () => {
    const before = propagationStats();
    const traceId = hex(16);
    const spanId = hex(8);
    const members = manyMembers(10_000);
    collector.clear();
    got.tracedBuffer.length = 0;
    // The header is far over 4096 bytes: the message is no envelope and passes through untouched.
    const big = Buffer.concat([MAGIC, Buffer.from(jsonObject([['traceparent', validTraceparent(traceId, spanId)], ['tracestate', members]])), Buffer.from('\nbody')]);
    await publisher.publish(channel, big);
    await waitUntil(() => got.tracedBuffer.length === 1, 'the oversized envelope', 3000, 1);
    assert.deepEqual(got.tracedBuffer[0], big);

    const entries: StreamEntry[] = [];
    const client = traceRedis(new Redis(REDIS_URL));
    const consumer = consumeStream(client, { streams: [stream], block: 100, handler: (e) => void entries.push(e) });
    await consumer.ready;
    try {
      await publisher.xadd(stream, '*', 'body', 'x', 'traceparent', validTraceparent(traceId, spanId), 'tracestate', members);
      await waitUntil(() => entries.length === 1, 'the entry', 3000, 1);
    } finally {
      await consumer.stop();
      await client.quit();
    }
    const s = collector.traces().flatMap((x) => x.spans).find((x) => x.attributes['messaging.message.id'] === entries[0]!.id)!;
    assert.equal(s.traceId, traceId);
    assert.equal(s.parentSpanId, spanId);
    assert.deepEqual(entries[0]!.fieldList, ['body', 'x']);
    assert.equal(propagationStats().invalidTracestate, before.invalidTracestate + 1);
  });
});
