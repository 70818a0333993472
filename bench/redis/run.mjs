// Side by side, in one run: plain ioredis, 'carrier' (plain ioredis sending a fixed envelope / fixed trace
// fields: the wire's share), 'spans' (two @cyb/core spans per message, nothing carried: the span model's
// share), traceRedis (+ consumeStream for streams), traceRedis with command spans, and
// ioredis with OpenTelemetry's instrumentation (command spans only: it carries no context through
// pub/sub or streams). Every measurement is a fresh process (variant.mjs); the order rotates each round
// so drift on a shared machine (Redis, other processes) spreads over all of them.
//
//   REDIS_URL=redis://127.0.0.1:6379 node bench/redis/run.mjs [rounds=5] [messages=20000] [modes=pubsub,streams]
//
// Reports per variant the median messages per second, the median over rounds of the ratio to the plain
// run of the same round (paired, so a slow round favours no one), and the client's CPU time per message
// (user + system of the benchmark process, producer and consumer together).
import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const rounds = Number(process.argv[2] ?? 5);
const messages = Number(process.argv[3] ?? 20_000);
const modes = (process.argv[4] ?? 'pubsub,streams').split(',');
const variants = ['plain', 'carrier', 'spans', 'cyb', 'cyb-commands', 'otel'];
const script = fileURLToPath(new URL('./variant.mjs', import.meta.url));

function measure(variant, mode) {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [script, variant, mode, String(messages)], { timeout: 120_000 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`${variant} ${mode}: ${err.message}\n${stderr}`));
      resolve(JSON.parse(stdout.trim().split('\n').pop()));
    });
  });
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

const out = { suite: 'redis', node: process.version, date: new Date().toISOString(), rounds, messages, modes: {} };
for (const mode of modes) {
  const results = Object.fromEntries(variants.map((v) => [v, []]));
  const cpu = Object.fromEntries(variants.map((v) => [v, []]));
  console.log(`\n### ${mode}`);
  for (let r = 0; r < rounds; r++) {
    const order = variants.map((_, i) => variants[(i + r) % variants.length]);
    const line = [];
    for (const v of order) {
      const res = await measure(v, mode);
      results[v].push(res.perSecond);
      cpu[v].push(res.cpuUsPerMessage);
      line.push(`${v} ${res.perSecond}/s`);
    }
    console.log(`round ${r + 1}: ${line.join(', ')}`);
  }
  const what = mode === 'pubsub' ? 'PUBLISH + receive on a second connection' : 'XADD + XREAD (COUNT 100) on a second connection';
  console.log(`\n${messages} messages of 100 bytes, ${what}, 100 in flight, in one process, ${rounds} rounds`);
  console.log('| variant | median msg/s | min | max | ratio to plain (paired median) | CPU µs/msg (median) |');
  console.log('|---|---:|---:|---:|---:|---:|');
  const rows = [];
  for (const v of variants) {
    const xs = results[v];
    const ratio = median(xs.map((x, i) => x / results.plain[i]));
    const row = { variant: v, perSecond: Math.round(median(xs)), min: Math.min(...xs), max: Math.max(...xs), ratio: Number(ratio.toFixed(3)), cpuUsPerMessage: median(cpu[v]) };
    rows.push(row);
    console.log(`| ${v} | ${row.perSecond} | ${row.min} | ${row.max} | ${ratio.toFixed(3)} | ${row.cpuUsPerMessage.toFixed(1)} |`);
  }
  out.modes[mode] = rows;
}
mkdirSync(new URL('../results/', import.meta.url), { recursive: true });
writeFileSync(new URL('../results/redis.json', import.meta.url), JSON.stringify(out, null, 2));
