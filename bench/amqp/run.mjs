// Side by side, in one run: plain amqplib, traceChannel (spans to a counting subscriber, and to a
// Collector), and amqplib with OpenTelemetry's instrumentation and a BatchSpanProcessor; plus
// 'headers', plain amqplib carrying fixed trace headers (what amqplib's header codec alone costs).
// See variant.mjs for each setup.
// Every measurement is a fresh process (variant.mjs); the order rotates each round
// so drift on a shared machine (the broker, other processes) spreads over all of them.
//
//   node bench/amqp/run.mjs [rounds=5] [messages=20000]
//
// Reports per variant the median messages per second, the median over rounds of the ratio to the
// plain run of the same round (paired, so a slow round does not favour anyone), and the client's CPU
// time per message (user + system of the benchmark process), which other load disturbs far less.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const rounds = Number(process.argv[2] ?? 5);
const messages = Number(process.argv[3] ?? 20_000);
const variants = ['plain', 'headers', 'cyb', 'cyb-collector', 'otel'];
const script = fileURLToPath(new URL('./variant.mjs', import.meta.url));

function measure(variant) {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [script, variant, String(messages)], { timeout: 120_000 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`${variant}: ${err.message}\n${stderr}`));
      resolve(JSON.parse(stdout.trim().split('\n').pop()));
    });
  });
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

const results = Object.fromEntries(variants.map((v) => [v, []]));
const cpu = Object.fromEntries(variants.map((v) => [v, []]));
for (let r = 0; r < rounds; r++) {
  const order = variants.map((_, i) => variants[(i + r) % variants.length]);
  const line = [];
  for (const v of order) {
    const res = await measure(v);
    results[v].push(res.perSecond);
    cpu[v].push(res.cpuUsPerMessage);
    line.push(`${v} ${res.perSecond}/s`);
  }
  console.log(`round ${r + 1}: ${line.join(', ')}`);
}

console.log(`\n${messages} messages of 100 bytes, publish + consume + ack on one connection, ${rounds} rounds`);
console.log('variant         median msg/s   min      max      ratio to plain (paired median)   CPU us/msg (median)');
for (const v of variants) {
  const xs = results[v];
  const ratios = xs.map((x, i) => x / results.plain[i]);
  console.log(
    `${v.padEnd(15)} ${String(Math.round(median(xs))).padStart(12)}   ${String(Math.min(...xs)).padEnd(8)} ${String(Math.max(...xs)).padEnd(8)} ${median(ratios).toFixed(3).padEnd(32)} ${median(cpu[v]).toFixed(1)}`,
  );
}
