// One measurement in a process of its own: send N messages of 100 bytes through Redis while a second
// connection takes them in; prints one JSON line.
//
//   node bench/redis/variant.mjs <plain|plain-fast|carrier|floor|spans|cyb|cyb-commands|otel> <pubsub|streams> [messages]
//   node bench/redis/variant.mjs <cyb-publisher|cyb-subscriber> pubsub [messages]
//   node bench/redis/variant.mjs spin-<pub|sub>-<µs> <pubsub|streams> [messages]
//
// pubsub:  PUBLISH on one connection, a `messageBuffer` listener on a subscribed second connection.
// streams: XADD on one connection, XREAD BLOCK (COUNT 100) on a second one, a handler per entry.
//
// plain:        ioredis as is; the stream reader is a hand-written XREAD loop doing what consumeStream does
//               (parse each entry into fields, await the handler), so both sides do the same work.
// plain-fast:   plain ioredis in a process that loaded @cyb/core first. ioredis subclasses String, which
//               leaves String.prototype in V8's slow dictionary mode; @cyb/core puts it back. Every
//               variant that loads @cyb/core has that, so this is what they are against once that
//               speed-up is taken out.
// carrier:      plain ioredis sending a fixed envelope (pubsub) or fixed traceparent and b3 fields (streams),
//               no tracing at all: what carrying the context alone costs on the wire and in Redis.
// floor:        the least any tracer that carries W3C context does, with no tracer at all: a
//               fixed envelope carrying traceparent alone (pubsub) or one traceparent field (streams),
//               the payload cut out of the envelope on receipt, and the handler run inside
//               AsyncLocalStorage.run(). No spans, nothing recorded.
// spans:        plain ioredis with two @cyb/core spans per message (send, process) and a Collector, nothing
//               carried between them: the share of the span model itself.
// cyb:          traceRedis (envelope on PUBLISH, trace fields on XADD, CONSUMER spans) and consumeStream,
//               spans kept by a Collector.
// cyb-commands: the same with `commandSpans: true`, a CLIENT span per command as well.
// cyb-publisher, cyb-subscriber (pubsub only, not in run.mjs): traceRedis on one side alone, to take
//               cyb apart. The publisher's envelopes reach a plain subscriber untouched; a plain
//               publisher sends envelopes made before the clock, one trace each, to the traced one.
// otel:         @opentelemetry/instrumentation-ioredis with a BasicTracerProvider and a BatchSpanProcessor
//               and the AsyncLocalStorage context manager: a CLIENT span per command (requireParentSpan off,
//               so commands outside a span are recorded too). It carries no context
//               through pub/sub or streams, so its consumer side is the plain one.
// spin-pub-<µs>, spin-sub-<µs> (controls, not in run.mjs): plain ioredis keeping the CPU busy for that
//               many microseconds (up to one decimal) before each send or in each handler call: what
//               a known cost per message does to the figures.
//
// Sends go out in windows of 100 concurrent commands, outside any span (as the kafka bench does), so
// each message starts a trace: PRODUCER + CONSUMER span for cyb, the command spans for otel. The same
// traffic runs for BENCH_WARMUP seconds first (default 3, ../lib/warm-up.mjs); then the clock runs
// from the first send to the last message handled.
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { performance } from 'node:perf_hooks';
import { warmUp } from '../lib/warm-up.mjs';

const [variant, mode = 'pubsub'] = process.argv.slice(2);
const N = Number(process.argv[4] ?? 20_000);
const WARMUP = 2_000;
const WINDOW = 100;
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const require = createRequire(import.meta.url);

if (mode !== 'pubsub' && mode !== 'streams') {
  console.error(`unknown mode ${mode}`);
  process.exit(2);
}

let trace = (client) => client;
let consume;
let carrier;
let wrapSend = (send) => send;
let wrapHandler = (handler) => handler;
const FIXED = {
  traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
  b3: '0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-1',
};
let finish = async () => ({});
let beforeClock = () => undefined;

const oneSide = variant === 'cyb-publisher' || variant === 'cyb-subscriber';
if (oneSide && mode !== 'pubsub') {
  console.error(`${variant} is for pubsub only`);
  process.exit(2);
}

if (variant === 'cyb' || variant === 'cyb-commands' || oneSide) {
  const core = await import('@cyb/core');
  const redis = await import('@cyb/redis');
  const collector = new core.Collector().start();
  if (variant === 'cyb-subscriber') {
    // One envelope per message, each of its own trace, made before the clock: the traced subscriber's
    // Collector then sees what it sees behind a traced publisher.
    const envelope = () => {
      const traceparent = `00-${randomBytes(16).toString('hex')}-${randomBytes(8).toString('hex')}-01`;
      return redis.wrapEnvelope(Buffer.alloc(100, 'x'), { context: core.extract({ traceparent }) });
    };
    let envelopes;
    let next = 0;
    carrier = { envelope: () => (envelopes === undefined ? envelope() : envelopes[next++]) };
    beforeClock = () => {
      envelopes = Array.from({ length: N }, envelope);
    };
  }
  trace = (client) => redis.traceRedis(client, { commandSpans: variant === 'cyb-commands' });
  consume = (client, key, handler) => {
    const consumer = redis.consumeStream(client, { streams: { [key]: '0' }, block: 1000, count: 100, buffers: true, handler });
    return { ready: consumer.ready, stop: () => consumer.stop() };
  };
  finish = async () => ({ collected: collector.stats(), redis: redis.redisTracingStats() });
} else if (variant === 'otel') {
  const { IORedisInstrumentation } = await import('@opentelemetry/instrumentation-ioredis');
  const { startOtelSdk } = await import('../lib/otel-sdk.mjs');
  const sdk = startOtelSdk({ propagators: false });
  // Its default records nothing outside a span; the sends here have no parent, as in the cyb variants.
  const instrumentation = new IORedisInstrumentation({ requireParentSpan: false });
  instrumentation.setTracerProvider(sdk.provider);
  finish = sdk.finish;
} else if (variant === 'spans') {
  // Two @cyb/core spans per message around plain ioredis, the same as cyb records, with nothing carried
  // between them: the floor the span model and the Collector set, whatever the adapter does.
  const core = await import('@cyb/core');
  const collector = new core.Collector().start();
  wrapSend = (send) => () => {
    const s = core.startSpan('send', { kind: 'producer', parent: null, attributes: { 'messaging.system': 'redis' } });
    return send().then((reply) => {
      s.end();
      return reply;
    });
  };
  wrapHandler = (handler) => (...args) => {
    const s = core.startSpan('process', { kind: 'consumer', parent: null, attributes: { 'messaging.system': 'redis' } });
    try {
      return core.withContext(core.contextWithSpan(s), () => handler(...args));
    } finally {
      s.end();
    }
  };
  finish = async () => ({ collected: collector.stats() });
} else if (variant === 'carrier') {
  const { wrapEnvelope } = await import('@cyb/redis');
  const { extract } = await import('@cyb/core');
  carrier = {
    envelope: wrapEnvelope(Buffer.alloc(100, 'x'), { context: extract(FIXED) }),
    fields: Object.entries(FIXED).flat(),
  };
} else if (variant === 'floor') {
  const { AsyncLocalStorage } = await import('node:async_hooks');
  const core = await import('@cyb/core');
  const { wrapEnvelope } = await import('@cyb/redis');
  core.configure({ inject: ['w3c'] });
  const envelope = wrapEnvelope(Buffer.alloc(100, 'x'), { context: core.extract({ traceparent: FIXED.traceparent }) });
  const headerLength = envelope.length - 100;
  carrier = { envelope, fields: ['traceparent', FIXED.traceparent] };
  const als = new AsyncLocalStorage();
  wrapHandler = (handler) =>
    mode === 'pubsub'
      ? (channel, message) => als.run(FIXED.traceparent, handler, channel, message.subarray(headerLength))
      : (entry) => als.run(entry.fields.traceparent, handler, entry);
} else if (/^spin-(pub|sub)-\d{1,3}(\.\d)?$/.test(variant)) {
  // Control: plain ioredis with a known CPU cost per message, on the publishing or receiving side.
  const [, where, us] = variant.split('-');
  const { busyFor } = await import('../lib/busy.mjs');
  const spin = busyFor(Number(us));
  if (where === 'pub') {
    wrapSend = (send) => () => {
      spin();
      return send();
    };
  } else {
    wrapHandler = (handler) => (...args) => {
      spin();
      return handler(...args);
    };
  }
} else if (variant === 'plain-fast') {
  await import('@cyb/core');
} else if (variant !== 'plain') {
  console.error(`unknown variant ${variant}`);
  process.exit(2);
}

// Loaded after the OpenTelemetry instrumentation registered its require hook (it patches ioredis).
const { Redis } = require('ioredis');

/** The plain stream reader: XREAD BLOCK in a loop on its own connection, a handler per entry. */
consume ??= (client, key, handler) => {
  const connection = client.duplicate();
  let stopping = false;
  let lastId = '0';
  const loop = (async () => {
    while (!stopping) {
      let reply;
      try {
        reply = await connection.xreadBuffer('COUNT', 100, 'BLOCK', 1000, 'STREAMS', key, lastId);
      } catch (error) {
        if (stopping) break;
        throw error;
      }
      for (const [stream, entries] of reply ?? []) {
        for (const [id, list] of entries) {
          const fields = Object.create(null);
          for (let i = 0; i + 1 < list.length; i += 2) fields[list[i].toString()] = list[i + 1];
          lastId = id.toString();
          await handler({ stream: stream.toString(), id: lastId, fields, fieldList: list });
        }
      }
    }
  })();
  return {
    ready: Promise.resolve(),
    stop: async () => {
      stopping = true;
      connection.disconnect();
      await loop;
    },
  };
};

const suffix = randomBytes(4).toString('hex');
const name = `cyb-redis-bench:${variant}:${mode}:${suffix}`;
const producer = variant === 'cyb-subscriber' ? new Redis(REDIS_URL) : trace(new Redis(REDIS_URL));
const receiver = variant === 'cyb-publisher' ? new Redis(REDIS_URL) : trace(new Redis(REDIS_URL));
const body = Buffer.alloc(100, 'x');

let received = 0;
let target = Infinity;
let done = () => undefined;
const seen = wrapHandler(() => {
  if (++received === target) done();
});

let stopConsumer = async () => undefined;
let send;
if (mode === 'pubsub') {
  receiver.on('messageBuffer', seen);
  await receiver.subscribe(name);
  if (typeof carrier?.envelope === 'function') send = () => producer.publish(name, carrier.envelope());
  else send = carrier ? () => producer.publish(name, carrier.envelope) : () => producer.publish(name, body);
} else {
  const consumer = consume(receiver, name, seen);
  await consumer.ready;
  stopConsumer = consumer.stop;
  send = carrier ? () => producer.xadd(name, '*', 'body', body, ...carrier.fields) : () => producer.xadd(name, '*', 'body', body);
}

send = wrapSend(send);

async function run(count) {
  received = 0;
  target = count;
  const all = new Promise((resolve) => {
    done = resolve;
  });
  const start = performance.now();
  const cpu = process.cpuUsage();
  for (let sent = 0; sent < count; sent += WINDOW) {
    const window = new Array(WINDOW);
    for (let i = 0; i < WINDOW; i++) window[i] = send();
    await Promise.all(window);
  }
  await all;
  const used = process.cpuUsage(cpu);
  return { ms: performance.now() - start, cpuUs: used.user + used.system };
}

await warmUp(run, WARMUP);
beforeClock();
const { ms, cpuUs } = await run(N);
const extra = await finish();
await stopConsumer();
if (mode === 'streams') await producer.del(name);
await Promise.all([producer.quit(), receiver.quit()]);
console.log(
  JSON.stringify({
    variant,
    mode,
    messages: N,
    ms: Math.round(ms),
    perSecond: Math.round((N / ms) * 1000),
    cpuUsPerMessage: Number((cpuUs / N).toFixed(1)),
    ...extra,
  }),
);
