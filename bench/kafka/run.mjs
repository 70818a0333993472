// Side by side, in one run: plain kafkajs, traceProducer + traceConsumer (W3C + B3, and W3C only),
// kafkajs with OpenTelemetry's instrumentation, 'headers' (plain kafkajs carrying fixed trace
// headers: the codec's share) and 'floor' (one fixed traceparent, handlers inside AsyncLocalStorage:
// the least any tracer carrying W3C context costs). Every measurement is a fresh process
// (variant.mjs); the order rotates each round so drift on a shared machine (the broker, other
// processes) spreads over all of them.
//
//   KAFKA_BROKERS=host:port node bench/kafka/run.mjs [rounds=5] [messages=20000] [modes=eachMessage,eachBatch]
//
// Reports per variant the median messages per second, the median over rounds of the ratio to the plain
// run of the same round (paired, so a slow round favours no one), and the client's CPU time per message
// (user + system of the benchmark process, producer and consumer together). Then codec.mjs times
// kafkajs's own record codec with and without trace headers, no broker involved.
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { rotatingRounds, saveResults } from '../lib/rounds.mjs';

if (!process.env.KAFKA_BROKERS) {
  console.log('skipped: KAFKA_BROKERS is not set (start tools/kafka-mock/build/broker, or point it at any Kafka)');
  process.exit(0);
}

const rounds = Number(process.argv[2] ?? 5);
const messages = Number(process.argv[3] ?? 20_000);
const modes = (process.argv[4] ?? 'eachMessage,eachBatch').split(',');
const variants = ['plain', 'headers', 'floor', 'cyb', 'cyb-w3c', 'otel'];
const script = fileURLToPath(new URL('./variant.mjs', import.meta.url));

const out = { suite: 'kafka', node: process.version, date: new Date().toISOString(), rounds, messages, modes: {} };
for (const mode of modes) {
  console.log(`\n### ${mode}`);
  out.modes[mode] = await rotatingRounds({
    script,
    variants,
    rounds,
    argsOf: (v) => [v, mode, String(messages)],
    title: `${messages} messages of 100 bytes, 100 per send, produce + consume (${mode}) in one process, ${rounds} rounds`,
  });
}
// What the headers cost inside kafkajs alone, beside the runs above. A failure here is reported and
// the runs above are still saved.
try {
  out.codec = execFileSync(process.execPath, [fileURLToPath(new URL('./codec.mjs', import.meta.url))], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  console.log(`\n${out.codec}`);
} catch (err) {
  console.error(`codec.mjs failed (${err.status ?? err.message}); the runs above are saved without it`);
}
saveResults('kafka', out);
