import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import { Collector, currentSpan, span, startSpan } from '@cyb/core';
import { MAX_ENVELOPE_HEADER, redisTracingStats, traceRedis, unwrapEnvelope, wrapEnvelope } from '@cyb/redis';
import { allSpans, connect, delay, spanNamed, spansNamed, uniquePrefix, waitFor } from './helpers.js';

interface Received {
  args: unknown[];
  spanId: string | undefined;
  traceId: string | undefined;
}

/** A listener that records its arguments and the span it ran in. */
function recorder(into: Received[]): (...args: unknown[]) => void {
  return (...args) => {
    const s = currentSpan()?.spanContext();
    into.push({ args, spanId: s?.spanId, traceId: s?.traceId });
  };
}

describe('pub/sub', () => {
  const collector = new Collector({ maxSpansPerTrace: 200 });
  const prefix = uniquePrefix();
  let plainPub: Redis;
  let tracedPub: Redis;
  let plainSub: Redis;
  let tracedSub: Redis;

  before(async () => {
    collector.start();
    plainPub = await connect();
    tracedPub = traceRedis(await connect());
    plainSub = await connect();
    // duplicate() of a traced client is traced the same way.
    tracedSub = tracedPub.duplicate();
    await tracedSub.connect();
  });
  after(async () => {
    collector.stop();
    await Promise.all([plainPub.quit(), tracedPub.quit(), plainSub.quit(), tracedSub.quit()]);
  });
  beforeEach(() => {
    collector.clear();
    plainSub.removeAllListeners('message').removeAllListeners('messageBuffer').removeAllListeners('pmessage');
    tracedSub.removeAllListeners('message').removeAllListeners('messageBuffer').removeAllListeners('pmessage');
  });

  it('continues the trace from a traced publisher to a traced subscriber on another connection', async () => {
    const channel = `${prefix}:orders`;
    const received: Received[] = [];
    tracedSub.on('message', recorder(received));
    await tracedSub.subscribe(channel);
    const receivers = await span('checkout', {}, () => tracedPub.publish(channel, '{"order":1}'));
    assert.equal(receivers, 1, 'PUBLISH still returns the number of receivers');
    await waitFor('the message', () => received.length === 1);
    assert.deepEqual(received[0]!.args, [channel, '{"order":1}']);
    const publish = await spanNamed(collector, `publish ${channel}`);
    const process = await spanNamed(collector, `process ${channel}`);
    const root = await spanNamed(collector, 'checkout');
    assert.equal(publish.kind, 'producer');
    assert.equal(publish.parentSpanId, root.spanId);
    assert.equal(publish.attributes['messaging.destination.name'], channel);
    assert.equal(process.kind, 'consumer');
    assert.equal(process.parentSpanId, publish.spanId);
    assert.equal(process.traceId, root.traceId);
    assert.equal(received[0]!.spanId, process.spanId, 'the listener runs inside the CONSUMER span');
    await tracedSub.unsubscribe(channel);
  });

  it('hands messageBuffer listeners the original bytes, binary included', async () => {
    const channel = `${prefix}:binary`;
    const payload = Buffer.from([0, 0x63, 0x79, 0x62, 0x31, 10, 0xff, 0xfe, 0, 10, 0xc3]);
    const received: Received[] = [];
    tracedSub.on('messageBuffer', recorder(received));
    await tracedSub.subscribe(channel);
    await span('binary', {}, () => tracedPub.publish(channel, payload));
    await waitFor('the message', () => received.length === 1);
    const [gotChannel, gotPayload] = received[0]!.args as [Buffer, Buffer];
    assert.equal(gotChannel.toString(), channel);
    assert.ok(Buffer.isBuffer(gotPayload));
    assert.deepEqual(gotPayload, payload);
    assert.equal(received[0]!.traceId, (await spanNamed(collector, 'binary')).traceId);
    await tracedSub.unsubscribe(channel);
  });

  it('traces pattern subscriptions, naming the span after the pattern', async () => {
    const pattern = `${prefix}:events:*`;
    const channel = `${prefix}:events:created`;
    const received: Received[] = [];
    tracedSub.on('pmessage', recorder(received));
    await tracedSub.psubscribe(pattern);
    await span('emit', {}, () => tracedPub.publish(channel, 'created'));
    await waitFor('the message', () => received.length === 1);
    assert.deepEqual(received[0]!.args, [pattern, channel, 'created']);
    const process = await spanNamed(collector, `process ${pattern}`);
    const publish = await spanNamed(collector, `publish ${channel}`);
    assert.equal(process.parentSpanId, publish.spanId);
    assert.equal(process.attributes['messaging.destination.name'], channel);
    assert.equal(process.attributes['messaging.destination.template'], pattern);
    assert.equal(received[0]!.spanId, process.spanId);
    await tracedSub.punsubscribe(pattern);
  });

  it('lets an untraced subscriber read the envelope with unwrapEnvelope()', async () => {
    const channel = `${prefix}:to-untraced`;
    const received: Received[] = [];
    plainSub.on('messageBuffer', recorder(received));
    await plainSub.subscribe(channel);
    await span('traced side', {}, () => tracedPub.publish(channel, 'hello'));
    await waitFor('the message', () => received.length === 1);
    const raw = received[0]!.args[1] as Buffer;
    assert.equal(raw.subarray(0, 5).toString('latin1'), '\u0000cyb1', 'the wire carries the envelope');
    const { payload, enveloped, headers, context } = unwrapEnvelope(raw);
    assert.equal(enveloped, true);
    assert.equal(payload.toString(), 'hello');
    const publish = await spanNamed(collector, `publish ${channel}`);
    assert.match(headers!.traceparent!, new RegExp(`^00-${publish.traceId}-${publish.spanId}-0[0-3]$`));
    const child = startSpan('untraced work', { parent: context! });
    child.end();
    assert.equal(child.traceId, publish.traceId);
    assert.equal(child.parentSpanId, publish.spanId);
    // String form gives the same payload.
    assert.equal(unwrapEnvelope(raw.toString()).payload, 'hello');
    await plainSub.unsubscribe(channel);
  });

  it('passes messages from an untraced publisher through untouched, each in a new trace', async () => {
    const channel = `${prefix}:from-untraced`;
    const received: Received[] = [];
    tracedSub.on('message', recorder(received));
    await tracedSub.subscribe(channel);
    const messages = ['plain text', '{"json":true}', '\u0000not ours', '', '\u0000cyb'];
    await span('unrelated', {}, async () => {
      for (const m of messages) await plainPub.publish(channel, m);
    });
    await waitFor('the messages', () => received.length === messages.length);
    assert.deepEqual(received.map((r) => r.args[1]), messages);
    const processes = await spansNamed(collector, `process ${channel}`, messages.length);
    const unrelated = await spanNamed(collector, 'unrelated');
    assert.ok(processes.every((p) => p.parentSpanId === undefined && p.traceId !== unrelated.traceId));
    assert.equal(new Set(processes.map((p) => p.traceId)).size, messages.length);
    await tracedSub.unsubscribe(channel);
  });

  it('never throws on hostile envelopes: malformed ones pass untouched, bad contexts start new traces', async () => {
    const channel = `${prefix}:hostile`;
    const received: Received[] = [];
    tracedSub.on('message', recorder(received));
    await tracedSub.subscribe(channel);
    const before = redisTracingStats().malformedEnvelopes;
    const proto = '\u0000cyb1{"__proto__":{"polluted":true},"constructor":{"prototype":{"polluted":true}},"traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}\npayload';
    const cases: [sent: string, expected: string][] = [
      ['\u0000cyb1{not json\npayload', '\u0000cyb1{not json\npayload'],
      ['\u0000cyb1[1,2]\npayload', '\u0000cyb1[1,2]\npayload'],
      ['\u0000cyb1"string"\npayload', '\u0000cyb1"string"\npayload'],
      [`\u0000cyb1{"b3":"${'a'.repeat(MAX_ENVELOPE_HEADER)}"}\npayload`, `\u0000cyb1{"b3":"${'a'.repeat(MAX_ENVELOPE_HEADER)}"}\npayload`],
      ['\u0000cyb1{"traceparent":"nonsense","b3":42}\npayload', 'payload'],
      ['\u0000cyb2{"traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}\nfuture', '\u0000cyb2{"traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}\nfuture'],
      [proto, 'payload'],
    ];
    for (const [sent] of cases) await plainPub.publish(channel, sent);
    await waitFor('the messages', () => received.length === cases.length);
    assert.deepEqual(received.map((r) => r.args[1]), cases.map(([, expected]) => expected));
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    assert.equal(redisTracingStats().malformedEnvelopes - before, 4);
    const processes = await spansNamed(collector, `process ${channel}`, cases.length);
    // Only the last one carries a valid context (the __proto__ keys are ignored, the traceparent is not).
    const continued = processes.filter((p) => p.parentSpanId !== undefined);
    assert.equal(continued.length, 1);
    assert.equal(continued[0]!.traceId, '0af7651916cd43dd8448eb211c80319c');
    assert.equal(continued[0]!.parentSpanId, 'b7ad6b7169203331');
    await tracedSub.unsubscribe(channel);
  });

  it('publishes through a channel filter only where it says so', async () => {
    const client = traceRedis(await connect(), { pubsub: (channel) => channel.endsWith(':wrapped') });
    try {
      const wrapped = `${prefix}:wrapped`;
      const bare = `${prefix}:bare`;
      const received: Received[] = [];
      plainSub.on('message', recorder(received));
      await plainSub.subscribe(wrapped, bare);
      await client.publish(wrapped, 'a');
      await client.publish(bare, 'b');
      await waitFor('the messages', () => received.length === 2);
      const byChannel = new Map(received.map((r) => [r.args[0], r.args[1] as string]));
      assert.ok(byChannel.get(wrapped)!.startsWith('\u0000cyb1'));
      assert.equal(byChannel.get(bare), 'b');
      await plainSub.unsubscribe(wrapped, bare);
    } finally {
      await client.quit();
    }
  });

  it('leaves emit() as it was: listener errors rethrown unchanged, no listener no span', async () => {
    const boom = new Error('listener failed');
    const client = traceRedis(await connect());
    try {
      client.on('message', () => {
        throw boom;
      });
      const message = wrapEnvelope('x', { context: undefined });
      assert.throws(() => client.emit('message', `${prefix}:direct`, message), (error) => error === boom);
      const failed = await spanNamed(collector, `process ${prefix}:direct`);
      assert.equal(failed.status.code, 'error');
      assert.equal(client.emit('pmessage', 'p', 'c', 'x'), false);
      assert.equal(client.emit('anything', 1, 2), false);
      await delay(5);
      assert.equal(allSpans(collector).filter((s) => s.name === 'process p').length, 0);
    } finally {
      await client.quit();
    }
  });

  it('wraps SPUBLISH and unwraps smessage (sharded pub/sub)', async () => {
    const channel = `${prefix}:sharded`;
    const received: Received[] = [];
    tracedSub.on('smessage', recorder(received));
    await tracedSub.ssubscribe(channel);
    await span('sharded', {}, () => tracedPub.spublish(channel, 'shard'));
    await waitFor('the message', () => received.length === 1);
    assert.deepEqual(received[0]!.args, [channel, 'shard']);
    const process = await spanNamed(collector, `process ${channel}`);
    const publish = await spanNamed(collector, `spublish ${channel}`);
    assert.equal(process.parentSpanId, publish.spanId);
    await tracedSub.sunsubscribe(channel);
    tracedSub.removeAllListeners('smessage');
  });
});

describe('unwrapEnvelope() / wrapEnvelope()', () => {
  it('round-trips strings and Buffers, including an empty payload', () => {
    for (const payload of ['', 'text', '\n\n', '\u0000cyb1 nested']) {
      const unwrapped = unwrapEnvelope(wrapEnvelope(payload));
      assert.equal(unwrapped.payload, payload);
      assert.equal(unwrapped.enveloped, true);
    }
    const bytes = Buffer.from([10, 0, 255]);
    assert.deepEqual(unwrapEnvelope(wrapEnvelope(bytes)).payload, bytes);
  });

  it('returns anything else as it was', () => {
    const odd = [Buffer.alloc(0), Buffer.from([0]), '\u0000c', Buffer.from('\u0000cyb1 no newline')];
    for (const m of odd) {
      const result = unwrapEnvelope(m);
      assert.equal(result.payload, m);
      assert.equal(result.enveloped, false);
      assert.equal(result.context, undefined);
    }
  });
});

describe('envelope headers', () => {
  // What JSON.parse makes of a header, keeping the names @cyb/core's inject writes: the reading the
  // envelope format defines, whatever shortcut the reader takes for headers it wrote itself.
  const NAMES = ['traceparent', 'tracestate', 'baggage', 'b3', 'x-b3-traceid', 'x-b3-spanid', 'x-b3-parentspanid', 'x-b3-sampled', 'x-b3-flags'];
  function byJsonParse(text: string): Record<string, string> | undefined {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      return undefined;
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) return undefined;
    const out: Record<string, string> = {};
    for (const [key, field] of Object.entries(value)) {
      if (NAMES.includes(key.toLowerCase()) && typeof field === 'string') out[key.toLowerCase()] = field;
    }
    return out;
  }

  it('reads a header of up to MAX_ENVELOPE_HEADER bytes and refuses a longer one, as a string and as a Buffer', () => {
    // `{"b3":"` + filler + `"}` is exactly `length` characters of header.
    const header = (length: number) => `{"b3":"${'a'.repeat(length - 9)}"}`;
    for (const [length, enveloped] of [
      [MAX_ENVELOPE_HEADER, true],
      [MAX_ENVELOPE_HEADER + 1, false],
    ] as const) {
      // A newline later in the payload must not end an over-long header.
      const text = `\u0000cyb1${header(length)}\npay\nload`;
      for (const message of [text, Buffer.from(text)]) {
        const unwrapped = unwrapEnvelope(message);
        assert.equal(unwrapped.enveloped, enveloped, `${length} bytes, ${typeof message}`);
        assert.equal(String(unwrapped.payload), enveloped ? 'pay\nload' : text);
        assert.equal(typeof unwrapped.payload, typeof message);
      }
    }
    // A short header before a payload far longer than the limit, and one with no payload at all.
    const big = 'x\n'.repeat(3 * MAX_ENVELOPE_HEADER);
    for (const [text, payload] of [
      [`\u0000cyb1${header(60)}\n${big}`, big],
      [`\u0000cyb1${header(60)}\n`, ''],
    ]) {
      for (const message of [text, Buffer.from(text)]) {
        const unwrapped = unwrapEnvelope(message);
        assert.equal(unwrapped.enveloped, true);
        assert.equal(String(unwrapped.payload), payload);
      }
    }
  });

  it('reads every header as JSON.parse does, escapes, white space and odd shapes included', () => {
    const tp = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    const headers = [
      `{"traceparent":"${tp}","b3":"0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-1"}`,
      `{ "traceparent" : "${tp}" }`,
      `{"traceparent":"${tp}","tracestate":"k=a\\"b\\\\c"}`,
      `{"trace\\u0070arent":"${tp}"}`,
      `{"traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\t"}`,
      `{"traceparent":"first","traceparent":"${tp}"}`,
      `{"TraceParent":"${tp}","app":"kept out"}`,
      `{"__proto__":"x","constructor":"y","hasOwnProperty":"z","traceparent":"${tp}"}`,
      `{"b3":"x"}trailing`,
      `{"b3":"x",}`,
      `{"b3":"x""b3":"y"}`,
      `{"b3":1,"traceparent":"${tp}"}`,
      `{"b3":"é"}`,
      '{}',
      '{"',
    ];
    for (const header of headers) {
      const unwrapped = unwrapEnvelope(`\u0000cyb1${header}\npayload`);
      assert.deepEqual(unwrapped.enveloped ? { ...unwrapped.headers } : undefined, byJsonParse(header), header);
      if (unwrapped.headers !== undefined) assert.equal(Object.getPrototypeOf(unwrapped.headers), Object.prototype, header);
      assert.equal(unwrapped.payload, unwrapped.enveloped ? 'payload' : `\u0000cyb1${header}\npayload`);
    }
  });

  it('writes only the trace fields into the header, whatever Object.prototype has been given', () => {
    const tp = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    const { context } = unwrapEnvelope(`\u0000cyb1{"traceparent":"${tp}"}\n`);
    const proto = Object.prototype as Record<string, unknown>;
    proto.injected = 'from a polluted prototype';
    try {
      const text = wrapEnvelope('payload', { context });
      const header = byJsonParse(text.slice(5, text.indexOf('\n')));
      assert.deepEqual(Object.keys(JSON.parse(text.slice(5, text.indexOf('\n')))).sort(), ['b3', 'traceparent']);
      assert.equal(header?.traceparent?.slice(0, 36), tp.slice(0, 36));
    } finally {
      delete proto.injected;
    }
  });

  it('writes a tracestate that needs escaping so that JSON.parse reads it back', () => {
    const tp = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    const incoming = unwrapEnvelope(`\u0000cyb1{"traceparent":"${tp}","tracestate":"k=a\\"b\\\\c,v=\u007e"}\n`);
    assert.equal(incoming.headers?.tracestate, 'k=a"b\\c,v=~');
    for (const payload of ['text', Buffer.from('bytes')]) {
      const envelope = wrapEnvelope(payload, { context: incoming.context });
      const text = Buffer.isBuffer(envelope) ? envelope.toString('utf8') : envelope;
      const header = text.slice(5, text.indexOf('\n'));
      assert.equal(byJsonParse(header)?.tracestate, 'k=a"b\\c,v=~');
      assert.deepEqual(unwrapEnvelope(envelope).payload, payload);
    }
  });
});
