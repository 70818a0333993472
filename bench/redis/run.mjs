// Side by side, in one run: plain ioredis, 'plain-fast' (plain in a process that loaded @cyb/core, whose
// String.prototype fix every variant that loads @cyb/core has), 'carrier' (plain ioredis sending a
// fixed envelope / fixed trace fields: the wire's share), 'floor' (traceparent alone carried, handler
// inside AsyncLocalStorage: the least any tracer carrying W3C context costs), 'spans' (two @cyb/core
// spans per message, nothing carried: the span model's share), traceRedis (+ consumeStream for
// streams), traceRedis with command spans, and ioredis with OpenTelemetry's instrumentation (command
// spans only: it carries no context through pub/sub or streams). Every measurement is a fresh process
// (variant.mjs); the order rotates each round so drift on a shared machine (Redis, other processes)
// spreads over all of them.
//
//   REDIS_URL=redis://127.0.0.1:6379 node bench/redis/run.mjs [rounds=5] [messages=20000] [modes=pubsub,streams]
//
// Reports per variant the median messages per second, the median over rounds of the ratio to the plain
// run of the same round (paired, so a slow round favours no one), and the client's CPU time per message
// (user + system of the benchmark process, producer and consumer together).
import { fileURLToPath } from 'node:url';
import { rotatingRounds, saveResults } from '../lib/rounds.mjs';

const rounds = Number(process.argv[2] ?? 5);
const messages = Number(process.argv[3] ?? 20_000);
const modes = (process.argv[4] ?? 'pubsub,streams').split(',');
const variants = ['plain', 'plain-fast', 'carrier', 'floor', 'spans', 'cyb', 'cyb-commands', 'otel'];
const script = fileURLToPath(new URL('./variant.mjs', import.meta.url));

const out = { suite: 'redis', node: process.version, date: new Date().toISOString(), rounds, messages, modes: {} };
for (const mode of modes) {
  console.log(`\n### ${mode}`);
  const what = mode === 'pubsub' ? 'PUBLISH + receive on a second connection' : 'XADD + XREAD (COUNT 100) on a second connection';
  out.modes[mode] = await rotatingRounds({
    script,
    variants,
    rounds,
    argsOf: (v) => [v, mode, String(messages)],
    title: `${messages} messages of 100 bytes, ${what}, 100 in flight, in one process, ${rounds} rounds`,
  });
}
saveResults('redis', out);
