// One measurement in a process of its own: publish N messages of ~100 bytes through RabbitMQ on one
// connection while a consumer on the same connection acks each one; prints one JSON line. The same
// traffic runs for BENCH_WARMUP seconds (default 3, ../lib/warm-up.mjs) before the clock starts.
//
//   node bench/amqp/variant.mjs <plain|headers|small-header|floor|cyb|cyb-w3c|cyb-collector|otel>[+app] [messages]
//
// plain: amqplib as is. headers: amqplib publishing a fixed traceparent and b3 header with every
//        message and no tracing at all (what carrying the context alone costs: amqplib's table codec,
//        and RabbitMQ's handling of a larger property block). small-header: plain amqplib with one
//        8-character header, which keeps each message's property block under 64 bytes (54 at most).
// floor: the least any tracer that carries W3C context does, with no tracer at all: one
//        traceparent header on every message, written into one headers table the channel reuses, and
//        the consume callback run inside AsyncLocalStorage.run() with that header's value as the store.
//        No spans, nothing recorded.
// cyb:   traceChannel on both channels; finished spans go to one onSpanEnd subscriber that counts them
//        (the counterpart of the otel variant's exporter). cyb-collector: the same, spans kept by a
//        default Collector (1000 traces, least recently active evicted: here it evicts constantly).
// cyb-w3c: cyb writing the W3C headers only (`configure({ inject: ['w3c'] })`): one header less per
//        message, for services whose peers all read traceparent.
// otel:  @opentelemetry/instrumentation-amqplib with a BasicTracerProvider and a BatchSpanProcessor,
//        W3C + B3 propagation and the AsyncLocalStorage context manager (what an SDK setup registers).
// +app:  the same variant publishing messages that carry an application's usual properties as well
//        (appId and type beside messageId and contentType: a 66-byte property block before any header).
//        RabbitMQ 3.10 spends markedly more CPU on a message whose property block is over 64 bytes, and
//        a traceparent header alone adds 72: the plain messages above stay under that line, these do not.
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { performance } from 'node:perf_hooks';
import { warmUp } from '../lib/warm-up.mjs';

const [variant, properties = 'bare'] = (process.argv[2] ?? '').split('+');
if (properties !== 'bare' && properties !== 'app') {
  console.error(`unknown properties ${properties}`);
  process.exit(2);
}
const N = Number(process.argv[3] ?? 20_000);
const WARMUP = 2_000;
const url = process.env.AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
const require = createRequire(import.meta.url);

let traceChannel = (ch) => ch;
/** No tracing: `sendToQueue` sends a fresh copy of `fixed` as every message's headers, as an application's own would be. */
const sendingHeaders = (fixed) => (ch) => {
  const sendToQueue = ch.sendToQueue.bind(ch);
  ch.sendToQueue = (queue, content, options) => sendToQueue(queue, content, { ...options, headers: { ...fixed } });
  return ch;
};
let finish = async () => ({});

if (variant === 'cyb' || variant === 'cyb-w3c' || variant === 'cyb-collector') {
  const core = await import('@cyb/core');
  if (variant === 'cyb-w3c') core.configure({ inject: ['w3c'] });
  const amqp = await import('@cyb/amqp');
  traceChannel = (ch) => amqp.traceChannel(ch);
  if (variant !== 'cyb-collector') {
    // The counterpart of the otel variant's exporter: every finished span handed over, counted, dropped.
    let ended = 0;
    core.onSpanEnd(() => {
      ended++;
    });
    finish = async () => ({ ended, amqp: amqp.amqpStats() });
  } else {
    const collector = new core.Collector().start();
    finish = async () => ({ collected: collector.stats(), amqp: amqp.amqpStats() });
  }
} else if (variant === 'otel') {
  const { AmqplibInstrumentation } = await import('@opentelemetry/instrumentation-amqplib');
  const { startOtelSdk } = await import('../lib/otel-sdk.mjs');
  const sdk = startOtelSdk();
  const instrumentation = new AmqplibInstrumentation();
  instrumentation.setTracerProvider(sdk.provider);
  finish = sdk.finish;
} else if (variant === 'headers') {
  traceChannel = sendingHeaders({
    traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
    b3: '0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-1',
  });
} else if (variant === 'floor') {
  const { AsyncLocalStorage } = await import('node:async_hooks');
  const als = new AsyncLocalStorage();
  traceChannel = (ch) => {
    // One table per channel, its value rewritten for each message: amqplib encodes it within the call.
    // A fresh object per message would cost more here than the header does, as `headers` shows.
    const table = { traceparent: '' };
    const sendToQueue = ch.sendToQueue.bind(ch);
    ch.sendToQueue = (queue, content, options) => {
      table.traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
      return sendToQueue(queue, content, { ...options, headers: table });
    };
    const consume = ch.consume.bind(ch);
    ch.consume = (queue, onMessage, options) =>
      consume(queue, (msg) => (msg === null ? onMessage(msg) : als.run(msg.properties.headers?.traceparent, onMessage, msg)), options);
    return ch;
  };
} else if (variant === 'small-header') {
  traceChannel = sendingHeaders({ 'x-s': '12345678' });
} else if (variant !== 'plain') {
  console.error(`unknown variant ${variant}`);
  process.exit(2);
}

// Loaded after the instrumentation registered its require hook (it patches amqplib's CommonJS files).
const amqplib = require('amqplib');

const connection = await amqplib.connect(url);
const publisher = traceChannel(await connection.createChannel());
const consumer = traceChannel(await connection.createChannel());
const queue = `cyb-amqp-bench-${variant}-${randomBytes(4).toString('hex')}`;
await publisher.assertQueue(queue, { durable: false, autoDelete: false });
await consumer.prefetch(1000);

const body = Buffer.alloc(100, 'x');
const optionsOf =
  properties === 'app'
    ? (i) => ({ messageId: String(i), contentType: 'application/octet-stream', appId: 'orders-service', type: 'order.created' })
    : (i) => ({ messageId: String(i), contentType: 'application/octet-stream' });
let received = 0;
let target = 0;
let done = () => undefined;
await consumer.consume(queue, (msg) => {
  if (msg === null) return;
  consumer.ack(msg);
  if (++received === target) done();
});

async function run(count) {
  received = 0;
  target = count;
  const all = new Promise((resolve) => {
    done = resolve;
  });
  const start = performance.now();
  const cpu = process.cpuUsage();
  for (let i = 0; i < count; i++) {
    if (!publisher.sendToQueue(queue, body, optionsOf(i))) {
      await new Promise((resolve) => publisher.once('drain', resolve));
    }
  }
  await all;
  const used = process.cpuUsage(cpu);
  return { ms: performance.now() - start, cpuUs: used.user + used.system };
}

await warmUp(run, WARMUP);
const { ms, cpuUs } = await run(N);
const extra = await finish();
await publisher.deleteQueue(queue);
await publisher.close();
await consumer.close();
await connection.close();
console.log(JSON.stringify({ variant: process.argv[2], messages: N, ms: Math.round(ms), perSecond: Math.round((N / ms) * 1000), cpuUsPerMessage: Number((cpuUs / N).toFixed(1)), ...extra }));
