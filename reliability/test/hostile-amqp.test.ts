// Hostile AMQP headers published with plain amqplib, fanned out to a traced and an untraced consumer.
// Both must receive the very same message; the traced one must not throw, must never adopt a parent
// the headers did not name, and nothing may reach Object.prototype.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import amqp, { type Channel, type ChannelModel, type ConsumeMessage } from 'amqplib';
import fc from 'fast-check';
import { Collector, inject, propagationStats, type SpanRecord } from '@cyb/core';
import { amqpStats, traceChannel } from '@cyb/amqp';
import { AMQP_URL, assertPrototypeClean, plainData, prototypeSnapshot, uniqueName, waitUntil } from './helpers.js';
import { PROTO_KEYS, hex, hostileKey, hostileText, traceparentText, compactMembers, parseTraceparent, validTraceparent } from './hostile.js';

/**
 * A header value of any type an AMQP table holds and RabbitMQ delivers. Not NaN or an infinite double:
 * amqplib encodes them, but RabbitMQ's channel process fails on such a table and the broker closes the
 * connection (541 INTERNAL_ERROR), so no consumer, traced or not, could ever receive the message.
 */
const tableValue: fc.Arbitrary<unknown> = fc.oneof(
  { arbitrary: hostileText, weight: 6 },
  { arbitrary: fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)), weight: 2 },
  { arbitrary: fc.oneof(fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }), fc.boolean()), weight: 1 },
  { arbitrary: fc.array(fc.oneof(fc.string({ maxLength: 20 }), traceparentText, fc.integer()), { maxLength: 70 }), weight: 1 },
  { arbitrary: fc.constantFrom<unknown>({ polluted: true }, { __proto__: { polluted: true } }, JSON.parse('{"__proto__":{"polluted":true}}'), { constructor: { prototype: { polluted: true } } }), weight: 1 },
);

/**
 * Every text a header value carries as the tracer may read it: a string, bytes as Latin-1, and the
 * items of an array (a one-item array is read as its item).
 */
function texts(value: unknown): string[] {
  if (typeof value === 'string') return [value];
  if (value instanceof Uint8Array) return [Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('latin1')];
  if (Array.isArray(value)) return value.flatMap(texts);
  return [];
}

/** A headers table with own keys only, `__proto__` included, as a hostile publisher could send. */
const headersTable = fc.array(fc.tuple(fc.oneof(hostileKey, fc.constantFrom(...PROTO_KEYS)), tableValue), { maxLength: 8 }).map((pairs) => {
  const headers: Record<string, unknown> = {};
  for (const [k, v] of pairs) Object.defineProperty(headers, k, { value: v, enumerable: true, writable: true, configurable: true });
  return headers;
});

describe('hostile AMQP headers from a plain publisher, into a traced and an untraced consumer', () => {
  // Room for many spans per trace: while fast-check shrinks a failure it publishes the same
  // traceparent again and again, and a full trace would then hide the real failure behind a dropped span.
  const collector = new Collector({ maxTraces: 5000, maxSpansPerTrace: 1000 });
  const exchange = uniqueName('hostile-exchange');
  const queues = { traced: uniqueName('hostile-traced'), plain: uniqueName('hostile-plain') };
  const received = { traced: new Map<string, ConsumeMessage>(), plain: new Map<string, ConsumeMessage>() };
  const contexts = new Map<string, Record<string, string>>();
  const proto = prototypeSnapshot();
  let connection: ChannelModel;
  let publisher: Channel;
  let tracedChannel: Channel;
  let plainChannel: Channel;

  before(async () => {
    collector.start();
    // Without noDelay each publish waits out Nagle's algorithm against delayed acks: 40 ms a message.
    connection = await amqp.connect(AMQP_URL, { noDelay: true });
    publisher = await connection.createChannel();
    await publisher.assertExchange(exchange, 'fanout', { durable: false, autoDelete: false });
    for (const q of Object.values(queues)) {
      await publisher.assertQueue(q, { durable: false });
      await publisher.bindQueue(q, exchange, '');
    }
    tracedChannel = traceChannel(await connection.createChannel());
    plainChannel = await connection.createChannel();
    await tracedChannel.consume(queues.traced, (msg) => {
      if (msg === null) return;
      // What the handler would pass on: the context it runs in.
      const carrier: Record<string, string> = {};
      inject(carrier);
      contexts.set(String(msg.properties.messageId), carrier);
      received.traced.set(String(msg.properties.messageId), msg);
      tracedChannel.ack(msg);
    });
    await plainChannel.consume(queues.plain, (msg) => {
      if (msg === null) return;
      received.plain.set(String(msg.properties.messageId), msg);
      plainChannel.ack(msg);
    });
  });

  after(async () => {
    collector.stop();
    for (const q of Object.values(queues)) await publisher.deleteQueue(q);
    await publisher.deleteExchange(exchange);
    await connection.close();
  });

  let n = 0;
  /** Publishes with plain amqplib and waits until both consumers have the message. */
  async function publish(headers: Record<string, unknown>, content: Buffer): Promise<string | undefined> {
    const id = `m${++n}`;
    try {
      publisher.publish(exchange, '', content, { headers, messageId: id });
    } catch {
      // amqplib could not encode it (a frame over the limit): nothing was sent, nothing to check.
      return undefined;
    }
    await waitUntil(() => received.traced.has(id) && received.plain.has(id), `message ${id} at both consumers`, 5000, 1);
    return id;
  }

  function spanOf(id: string): SpanRecord {
    const spans = collector.traces().flatMap((t) => t.spans).filter((s) => s.kind === 'consumer' && s.attributes['messaging.message.id'] === id);
    assert.equal(spans.length, 1, `one consumer span for ${id}`);
    return spans[0]!;
  }

  it('any table: delivered intact, traced or not; no stranger adopted; no pollution', async (t) => {
    const seen = { delivered: 0, continued: 0 };
    const errorsBefore = amqpStats().errors;
    await fc.assert(
      fc.asyncProperty(fc.option(fc.constant(null).map(() => validTraceparent()), { freq: 3 }), headersTable, fc.uint8Array({ maxLength: 256 }), async (parent, table, body) => {
        if (parent !== null && !Object.hasOwn(table, 'traceparent')) table.traceparent = parent;
        const id = await publish(table, Buffer.from(body));
        fc.pre(id !== undefined);
        const tracedMsg = received.traced.get(id!)!;
        const plainMsg = received.plain.get(id!)!;
        // The message is the broker's, byte for byte, whatever the tracer did with its headers.
        assert.deepEqual(tracedMsg.content, plainMsg.content);
        assert.deepEqual(plainData(tracedMsg.properties), plainData(plainMsg.properties));
        assert.equal(tracedMsg.fields.exchange, plainMsg.fields.exchange);
        assertPrototypeClean(proto);
        seen.delivered++;
        const s = spanOf(id!);
        const sent = Object.hasOwn(table, 'traceparent') && typeof table.traceparent === 'string' ? parseTraceparent(table.traceparent) : undefined;
        if (s.parentSpanId !== undefined) {
          seen.continued++;
          // Only a parent the table named: its traceparent, or a B3 pair it carried.
          const named = [table.traceparent, table.b3, table.B3].flatMap(texts).some((v) => v.includes(s.parentSpanId!) && v.includes(s.traceId.replace(/^0{16}/, '')));
          const multi = texts(table['x-b3-spanid']).length > 0 || texts(table['X-B3-SpanId']).length > 0;
          assert.ok(named || multi, `parent ${s.traceId}/${s.parentSpanId} was named by the headers`);
        }
        // A `__proto__` header swaps the decoded table's prototype (amqplib assigns key by key); the
        // tracer may then treat the table as no table and start a new trace, as its README says.
        if (sent && !Object.hasOwn(table, '__proto__')) {
          assert.equal(s.traceId, sent.traceId, 'a well-formed traceparent is continued');
          assert.equal(s.parentSpanId, sent.spanId);
        }
      }),
      { numRuns: 300 },
    );
    t.diagnostic(`delivered ${seen.delivered}, continuing a sent parent ${seen.continued}`);
    assert.ok(seen.continued > 0);
    assert.equal(amqpStats().errors, errorsBefore, 'no tracing failure: hostile input is input, not a fault');
  });

  it('10,000 tracestate members, as one string and as an array: the parent kept, the tracestate dropped, counted', async () => {
    const before = propagationStats();
    // amqplib encodes a headers table into at most 64 KB, so the members are as short as they come.
    for (const tracestate of [compactMembers(10_000), Array.from({ length: 10_000 }, () => 'a')]) {
      const traceId = hex(16);
      const spanId = hex(8);
      const started = performance.now();
      const id = await publish({ traceparent: validTraceparent(traceId, spanId), tracestate }, Buffer.from('x'));
      const elapsed = performance.now() - started;
      assert.ok(id !== undefined);
      const s = spanOf(id);
      assert.equal(s.traceId, traceId);
      assert.equal(s.parentSpanId, spanId);
      assert.equal(contexts.get(id)!.tracestate, undefined, 'no tracestate passed on');
      assert.ok(elapsed < 1000, `delivered in ${elapsed.toFixed(0)} ms`);
    }
    assert.equal(propagationStats().invalidTracestate, before.invalidTracestate + 2);
  });
});
