// One measurement in a process of its own: produce N messages of ~100 bytes to a fresh topic, 100 per
// send, while a consumer group member takes them in; prints one JSON line.
//
//   node bench/kafka/variant.mjs <plain|headers|floor|cyb|cyb-w3c|otel> <eachMessage|eachBatch> [messages]
//
// plain:   kafkajs as is.
// headers: kafkajs carrying a fixed traceparent and b3 header on every message, no tracing at all
//          (what carrying the context alone costs: kafkajs's record codec).
// floor:   the least any tracer that carries W3C context does, with no tracer at all: one
//          fixed traceparent header on every message, and each message handled inside
//          AsyncLocalStorage.run() with that header's value as the store. No spans, nothing recorded.
// cyb:     traceProducer and traceConsumer, spans kept by a Collector; W3C and B3 headers (the default).
// cyb-w3c: the same writing W3C headers only (`formats: ['w3c']`): one header less per message.
// otel:    @opentelemetry/instrumentation-kafkajs with a BasicTracerProvider and a BatchSpanProcessor,
//          W3C + B3 propagation and the AsyncLocalStorage context manager (what an SDK setup registers).
//
// The consumer side is either `eachMessage` or `eachBatch` with the usual loop (work, resolveOffset,
// heartbeat). The group join (about 3 s on the test broker) comes first, then the same traffic for
// BENCH_WARMUP seconds (default 3, ../lib/warm-up.mjs); then the clock runs from the first send to the
// last message handled.
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { performance } from 'node:perf_hooks';
import { warmUp } from '../lib/warm-up.mjs';

const [variant, mode = 'eachMessage'] = process.argv.slice(2);
const N = Number(process.argv[4] ?? 20_000);
const WARMUP = 2_000;
const PER_SEND = 100;
const require = createRequire(import.meta.url);
const brokers = (process.env.KAFKA_BROKERS ?? '').split(',').filter(Boolean);
if (brokers.length === 0) {
  console.error('KAFKA_BROKERS is not set (start tools/kafka-mock/build/broker, or any Kafka)');
  process.exit(2);
}
if (mode !== 'eachMessage' && mode !== 'eachBatch') {
  console.error(`unknown mode ${mode}`);
  process.exit(2);
}

let traceProducer = (p) => p;
let traceConsumer = (c) => c;
let extraHeaders;
/** The floor's wrapper around each message's handling; undefined for every other variant. */
let inContext;
let finish = async () => ({});

if (variant === 'cyb' || variant === 'cyb-w3c') {
  const { Collector } = await import('@cyb/core');
  const kafka = await import('@cyb/kafka');
  const collector = new Collector().start();
  traceProducer = (p) => kafka.traceProducer(p, variant === 'cyb-w3c' ? { formats: ['w3c'] } : {});
  traceConsumer = (c) => kafka.traceConsumer(c);
  finish = async () => ({ collected: collector.stats(), kafka: kafka.kafkaStats() });
} else if (variant === 'otel') {
  const { KafkaJsInstrumentation } = await import('@opentelemetry/instrumentation-kafkajs');
  const { startOtelSdk } = await import('../lib/otel-sdk.mjs');
  const sdk = startOtelSdk();
  const instrumentation = new KafkaJsInstrumentation();
  instrumentation.setTracerProvider(sdk.provider);
  finish = sdk.finish;
} else if (variant === 'headers') {
  extraHeaders = {
    traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
    b3: '0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-1',
  };
} else if (variant === 'floor') {
  const { AsyncLocalStorage } = await import('node:async_hooks');
  const als = new AsyncLocalStorage();
  extraHeaders = { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' };
  inContext = (message, fn) => als.run(message.headers?.traceparent, fn);
} else if (variant !== 'plain') {
  console.error(`unknown variant ${variant}`);
  process.exit(2);
}

// Loaded after the OpenTelemetry instrumentation registered its require hook (it patches kafkajs).
const { Kafka, logLevel } = require('kafkajs');

const suffix = randomBytes(4).toString('hex');
const topic = `cyb-kafka-bench-${variant}-${suffix}`;
const kafka = new Kafka({ clientId: 'cyb-kafka-bench', brokers, logLevel: logLevel.NOTHING });
const producer = traceProducer(kafka.producer());
const consumer = traceConsumer(
  kafka.consumer({ groupId: `${topic}-group`, sessionTimeout: 6000, heartbeatInterval: 500, maxWaitTimeInMs: 100 }),
);

const body = Buffer.alloc(100, 'x');
let received = 0;
let target = Infinity;
let done = () => undefined;
const seen = () => {
  if (++received === target) done();
};

await producer.connect();
// Produce once so the topic exists (auto-created) before the consumer subscribes.
await producer.send({ topic, messages: [{ value: body }] });
await consumer.connect();
await consumer.subscribe({ topic, fromBeginning: true });
let joined;
const join = new Promise((resolve) => {
  joined = resolve;
});
consumer.on(consumer.events.GROUP_JOIN, () => joined());
await consumer.run(
  mode === 'eachMessage'
    ? { eachMessage: inContext ? async ({ message }) => inContext(message, seen) : async () => seen() }
    : {
        eachBatch: async ({ batch, resolveOffset, heartbeat }) => {
          for (const message of batch.messages) {
            if (inContext) {
              await inContext(message, async () => {
                seen();
                resolveOffset(message.offset);
                await heartbeat();
              });
              continue;
            }
            seen();
            resolveOffset(message.offset);
            await heartbeat();
          }
        },
      },
);
await join;
// The first message, produced before the clock.
await new Promise((resolve) => {
  const poll = () => (received >= 1 ? resolve() : setTimeout(poll, 5));
  poll();
});

let counter = 0;
function messages() {
  const out = new Array(PER_SEND);
  for (let i = 0; i < PER_SEND; i++) {
    const key = String(counter++);
    out[i] = extraHeaders ? { key, value: body, headers: { ...extraHeaders } } : { key, value: body };
  }
  return out;
}

async function run(count) {
  received = 0;
  target = count;
  const all = new Promise((resolve) => {
    done = resolve;
  });
  const start = performance.now();
  const cpu = process.cpuUsage();
  for (let sent = 0; sent < count; sent += PER_SEND) {
    await producer.send({ topic, messages: messages() });
  }
  await all;
  const used = process.cpuUsage(cpu);
  return { ms: performance.now() - start, cpuUs: used.user + used.system };
}

await warmUp(run, WARMUP);
const { ms, cpuUs } = await run(N);
const extra = await finish();
await consumer.disconnect();
await producer.disconnect();
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
