// Side by side, in one run: plain amqplib, traceChannel (spans to a counting subscriber, the same
// writing W3C headers only, and spans to a Collector), and amqplib with OpenTelemetry's instrumentation
// and a BatchSpanProcessor; plus 'headers', plain amqplib carrying fixed trace headers (what carrying
// them alone costs), 'small-header', one short header that keeps the message's property block under
// 64 bytes, and 'floor', one fixed traceparent with the consumer inside AsyncLocalStorage (the least
// any tracer carrying W3C context costs). The +app variants publish messages with an application's
// usual properties (appId, type), which put the property block over 64 bytes before any trace
// header, each against plain amqplib doing the same.
// See variant.mjs for each setup. Every measurement is a fresh process (variant.mjs); the order rotates
// each round so drift on a shared machine (the broker, other processes) spreads over all of them.
//
//   node bench/amqp/run.mjs [rounds=5] [messages=20000]
//
// Reports per variant the median messages per second, the median over rounds of the ratio to the
// plain run of the same round (paired, so a slow round does not favour anyone), and the client's CPU
// time per message (user + system of the benchmark process), which other load disturbs far less.
import { fileURLToPath } from 'node:url';
import { rotatingRounds, saveResults } from '../lib/rounds.mjs';

const rounds = Number(process.argv[2] ?? 5);
const messages = Number(process.argv[3] ?? 20_000);
const variants = [
  'plain',
  'headers',
  'small-header',
  'floor',
  'cyb',
  'cyb-w3c',
  'cyb-collector',
  'otel',
  'plain+app',
  'floor+app',
  'cyb-collector+app',
  'otel+app',
];
const script = fileURLToPath(new URL('./variant.mjs', import.meta.url));

const rows = await rotatingRounds({
  script,
  variants,
  rounds,
  argsOf: (v) => [v, String(messages)],
  // Messages with an application's properties (+app) are compared with plain amqplib sending the same.
  baseOf: (v) => (v.endsWith('+app') ? 'plain+app' : 'plain'),
  title: `${messages} messages of 100 bytes, publish + consume + ack on one connection, ${rounds} rounds`,
});
saveResults('amqp', { suite: 'amqp', node: process.version, date: new Date().toISOString(), rounds, messages, rows });
