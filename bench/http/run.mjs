// HTTP server overhead: autocannon against a route returning small JSON, Express and Koa, each variant
// in a process of its own, variants alternating round by round in one run (see server.mjs).
//
//   node bench/http/run.mjs [express|koa]
//   BENCH_HTTP_ROUNDS=5 BENCH_HTTP_SECONDS=4 BENCH_HTTP_WARMUP=3 BENCH_HTTP_CONNECTIONS=50 node bench/http/run.mjs
//   BENCH_HTTP_VARIANTS=plain,cyb,cyb-keep-none,cyb-small node bench/http/run.mjs express
//   BENCH_HTTP_VARIANTS=plain,spin-2,spin-5,spin-10,cyb node bench/http/run.mjs koa
//
// `spin-<µs>` variants (not run by default) calibrate the table: a middleware that keeps the CPU busy
// for that many microseconds per request, so a ratio can be read as a number of microseconds added.
// Each round starts a fresh server per variant, warms it up (3 s by default), then measures. The
// warm-up lasts until V8 has compiled what the server runs: with --trace-opt on Node 24, a traced Koa
// server still compiled about 200 functions in its second second under load, plain Koa 16, and on
// two cores those compilations take CPU from the server or its client. One table per
// framework: median requests per second, median server CPU time per request (all, and user only: the
// steadier figures when other processes share the machine; system time is mostly the loopback TCP
// stack), each with its ratio to the plain framework (for CPU time the ratio is plain / variant, so
// every ratio reads as "share of plain throughput kept"). A ratio is the median of the rounds' own
// ratios, each variant against the plain server of the same round, as in the broker suites: a round
// the whole machine ran slow in moves every variant of that round, not one variant's median.
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, writeFileSync } from 'node:fs';
import autocannon from 'autocannon';
import { median } from '../lib/rounds.mjs';

const ROUNDS = Number(process.env.BENCH_HTTP_ROUNDS ?? 5);
const SECONDS = Number(process.env.BENCH_HTTP_SECONDS ?? 4);
const CONNECTIONS = Number(process.env.BENCH_HTTP_CONNECTIONS ?? 50);
const WARMUP = Number(process.env.BENCH_HTTP_WARMUP ?? 3);
for (const [name, value, least] of [['BENCH_HTTP_ROUNDS', ROUNDS, 1], ['BENCH_HTTP_SECONDS', SECONDS, 1], ['BENCH_HTTP_WARMUP', WARMUP, 0], ['BENCH_HTTP_CONNECTIONS', CONNECTIONS, 1]]) {
  if (!Number.isInteger(value) || value < least) {
    console.error(`${name} must be a whole number of at least ${least}, got ${process.env[name]}`);
    process.exit(2);
  }
}
const LABELS = {
  plain: 'plain',
  cyb: 'traceHttp() + Collector',
  'cyb-no-collector': 'traceHttp(), no collector',
  'cyb-keep-none': 'traceHttp(), a subscriber that keeps nothing',
  'cyb-small': 'traceHttp() + Collector of 16 traces',
  noop: 'control: middleware calling next() only',
  als: 'control: next() inside AsyncLocalStorage.run()',
  otel: 'OpenTelemetry SDK, BatchSpanProcessor',
};
const VARIANTS = (process.env.BENCH_HTTP_VARIANTS ?? 'plain,cyb,cyb-no-collector,noop,als,otel').split(',');
for (const v of VARIANTS) {
  const spin = /^spin-(\d{1,4})$/.exec(v);
  if (spin !== null) LABELS[v] = `control: next() after ${spin[1]} µs of busy CPU`;
  else if (!Object.hasOwn(LABELS, v)) {
    console.error(`unknown variant ${v}; known: ${Object.keys(LABELS).join(', ')}, spin-<µs>`);
    process.exit(2);
  }
}
if (!VARIANTS.includes('plain')) {
  console.error('BENCH_HTTP_VARIANTS must include plain: every ratio is against it');
  process.exit(2);
}
const frameworks = process.argv[2] ? [process.argv[2]] : ['express', 'koa'];
const serverPath = new URL('./server.mjs', import.meta.url).pathname;

function ask(child, message) {
  const reply = once(child, 'message');
  child.send(message);
  return reply.then(([value]) => value);
}

async function measureOnce(framework, variant) {
  const child = fork(serverPath, [framework, variant], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const [{ port }] = await once(child, 'message');
  const url = `http://127.0.0.1:${port}/users/42`;
  if (WARMUP > 0) await autocannon({ url, connections: CONNECTIONS, duration: WARMUP });
  await ask(child, 'mark');
  const load = await autocannon({ url, connections: CONNECTIONS, duration: SECONDS });
  const server = await ask(child, 'report');
  await once(child, 'exit');
  return { rps: load.requests.average, errors: load.errors + load.non2xx, ...server };
}

const out = { suite: 'http', node: process.version, date: new Date().toISOString(), rounds: ROUNDS, seconds: SECONDS, connections: CONNECTIONS, frameworks: {} };

for (const framework of frameworks) {
  const samples = Object.fromEntries(VARIANTS.map((v) => [v, []]));
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? VARIANTS : [...VARIANTS].reverse();
    for (const variant of order) {
      const m = await measureOnce(framework, variant);
      samples[variant].push(m);
      process.stderr.write(`${framework} ${round + 1}/${ROUNDS} ${variant}: ${Math.round(m.rps)} req/s, ${m.cpuUsPerRequest.toFixed(1)} µs CPU/request (${m.userUsPerRequest.toFixed(1)} user)${m.errors ? `, ${m.errors} errors` : ''}\n`);
    }
  }
  const plain = samples.plain;
  // Per round: the variant's requests per second over plain's, and plain's CPU time over the variant's.
  const pairedRatio = (v, pick, inverse) => median(samples[v].map((m, r) => (inverse ? pick(plain[r]) / pick(m) : pick(m) / pick(plain[r]))));
  console.log(`\n### ${framework} (median of ${ROUNDS} rounds of ${SECONDS} s, ${CONNECTIONS} connections; ratios: paired medians against plain)\n`);
  console.log('| variant | req/s | ratio | CPU µs/request | ratio | user CPU µs/request | ratio |');
  console.log('|---|---:|---:|---:|---:|---:|---:|');
  const rows = [];
  for (const v of VARIANTS) {
    const rps = median(samples[v].map((m) => m.rps));
    const cpu = median(samples[v].map((m) => m.cpuUsPerRequest));
    const user = median(samples[v].map((m) => m.userUsPerRequest));
    const row = {
      variant: LABELS[v],
      rps: Math.round(rps),
      rpsRatio: Number(pairedRatio(v, (m) => m.rps, false).toFixed(3)),
      cpuUsPerRequest: Number(cpu.toFixed(1)),
      cpuRatio: Number(pairedRatio(v, (m) => m.cpuUsPerRequest, true).toFixed(3)),
      userUsPerRequest: Number(user.toFixed(1)),
      userRatio: Number(pairedRatio(v, (m) => m.userUsPerRequest, true).toFixed(3)),
      samples: samples[v].map((m) => ({ rps: Math.round(m.rps), cpuUsPerRequest: Number(m.cpuUsPerRequest.toFixed(1)), userUsPerRequest: Number(m.userUsPerRequest.toFixed(1)) })),
    };
    rows.push(row);
    console.log(`| ${row.variant} | ${row.rps.toLocaleString('en-US')} | ${row.rpsRatio.toFixed(2)} | ${row.cpuUsPerRequest} | ${row.cpuRatio.toFixed(2)} | ${row.userUsPerRequest} | ${row.userRatio.toFixed(2)} |`);
  }
  out.frameworks[framework] = rows;
}
mkdirSync(new URL('../results/', import.meta.url), { recursive: true });
writeFileSync(new URL('../results/http.json', import.meta.url), JSON.stringify(out, null, 2) + '\n');
