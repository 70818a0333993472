// traceRedis's own cost per message with no I/O: the publish path (PRODUCER span, envelope, the span
// ended into a Collector) and the receive path (envelope removed, CONSUMER span around the listener)
// run in a loop against a stand-in client, so the figure is what the package's code takes before any
// socket, cache or scheduler effect of a real process. Prints the median of 7 rounds.
//
//   node bench/redis/loop.mjs [publish|receive] [--no-collector]
import { randomBytes } from 'node:crypto';
import { Collector, extract } from '@cyb/core';
import { traceRedis, wrapEnvelope } from '@cyb/redis';

const path = process.argv[2] ?? 'publish';
if (path !== 'publish' && path !== 'receive') {
  console.error(`unknown path ${path}`);
  process.exit(2);
}
if (!process.argv.includes('--no-collector')) new Collector().start();

// The part of an ioredis client traceRedis hooks: sendCommand hands the command back, emit does nothing.
const client = traceRedis({
  sendCommand: (command) => command,
  emit: () => true,
  listenerCount: () => 1,
  duplicate: () => ({}),
  options: { host: '127.0.0.1', port: 6379 },
});
const body = Buffer.alloc(100, 'x');
const channel = Buffer.from('orders');
// Envelopes of 4096 traces, taken in turn: more than the Collector keeps, so each receive is a new trace.
const envelopes = Array.from({ length: 4096 }, () =>
  wrapEnvelope(body, { context: extract({ traceparent: `00-${randomBytes(16).toString('hex')}-${randomBytes(8).toString('hex')}-01` }) }),
);

let bytes = 0;
function publish(n) {
  for (let i = 0; i < n; i++) {
    const command = { name: 'publish', args: ['orders', body], resolve: (v) => v, reject: (e) => e };
    client.sendCommand(command);
    command.resolve(1);
    bytes += command.args[1].length;
  }
}
function receive(n) {
  for (let i = 0; i < n; i++) client.emit('messageBuffer', channel, envelopes[i & 4095]);
}

const run = path === 'publish' ? publish : receive;
for (let r = 0; r < 3; r++) run(50_000);
const perOp = [];
for (let r = 0; r < 7; r++) {
  const start = process.hrtime.bigint();
  run(100_000);
  perOp.push(Number(process.hrtime.bigint() - start) / 100_000);
}
perOp.sort((a, b) => a - b);
console.log(JSON.stringify({ path, nsPerMessage: Math.round(perOp[3]), min: Math.round(perOp[0]), max: Math.round(perOp[6]), bytesPublished: bytes }));
