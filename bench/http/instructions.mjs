// HTTP server overhead counted in instructions, not time: each variant's server (server.mjs) runs under
// valgrind's callgrind twice, serving a short and a long run of requests from autocannon, and the
// difference between the two counts divided by the difference in requests is the server's cost per
// request once warm (start-up and compilation cancel out). Counts repeat to within a few per cent from
// run to run; requests per second on a shared machine do not. Keep the machine otherwise idle all the same:
// by default the client sends one request at a time, and a starved client still changes what the
// server does.
//
//   node bench/http/instructions.mjs [express|koa] [variant ...]
//   BENCH_HTTP_SHORT=10000 BENCH_HTTP_LONG=30000 node bench/http/instructions.mjs koa plain cyb
//   BENCH_HTTP_CONNECTIONS=50 node bench/http/instructions.mjs koa plain als cyb
//
// One connection by default. BENCH_HTTP_CONNECTIONS=50 counts with as many requests in flight as the
// throughput suite keeps; the server then takes several requests per wake-up, which moves the count
// per request (Koa on Node 20: about 105,000 instructions plain against 89,000 with one connection).
// Needs valgrind (Debian: apt-get install valgrind). Each variant takes a few minutes (Express more).
// On Node 24 the optimising compiler is still busy between 10,000 and 30,000 requests (about 35,000
// of Koa's instructions per request, in every variant); BENCH_HTTP_SHORT=40000 BENCH_HTTP_LONG=80000
// counts Koa in steady state.
// Only user-space instructions are counted. The kernel's share of each request (the loopback TCP
// stack, about a third of a plain Koa server's CPU time here) is the same for every variant and is left
// out, which makes a ratio of instructions read lower than the throughput ratio; cache misses are left
// out too, and the spans a Collector keeps add to those, which works the other way.
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { saveResults } from '../lib/rounds.mjs';

const SHORT = Number(process.env.BENCH_HTTP_SHORT ?? 10_000);
const LONG = Number(process.env.BENCH_HTTP_LONG ?? 30_000);
const CONNECTIONS = Number(process.env.BENCH_HTTP_CONNECTIONS ?? 1);
const ALL = ['plain', 'cyb', 'cyb-no-collector', 'cyb-keep-none', 'cyb-small', 'noop', 'als', 'otel'];
const DEFAULT = ['plain', 'cyb', 'cyb-no-collector', 'noop', 'als', 'otel'];
const [frameworkArg, ...variantArgs] = process.argv.slice(2);
const frameworks = frameworkArg ? [frameworkArg] : ['express', 'koa'];
const variants = variantArgs.length > 0 ? variantArgs : DEFAULT;
const server = fileURLToPath(new URL('./server.mjs', import.meta.url));

if (!(LONG > SHORT && SHORT > 0)) {
  console.error('BENCH_HTTP_LONG must be larger than BENCH_HTTP_SHORT, both positive');
  process.exit(2);
}
if (!Number.isInteger(CONNECTIONS) || CONNECTIONS < 1 || CONNECTIONS > SHORT) {
  console.error('BENCH_HTTP_CONNECTIONS must be a whole number from 1 to BENCH_HTTP_SHORT');
  process.exit(2);
}
if (spawnSync('valgrind', ['--version']).status !== 0) {
  console.error('valgrind is not installed (Debian: apt-get install valgrind)');
  process.exit(2);
}
for (const v of variants) {
  if (!ALL.includes(v)) {
    console.error(`unknown variant ${v}; known: ${ALL.join(', ')}`);
    process.exit(2);
  }
}

/** Instructions callgrind counted in a server that served `requests` requests. */
async function count(framework, variant, requests) {
  const child = spawn(
    'valgrind',
    ['--tool=callgrind', '--callgrind-out-file=/dev/null', process.execPath, '--single-threaded', server, framework, variant],
    { env: { ...process.env, BENCH_HTTP_REQUESTS: String(requests) }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  let stdout = '';
  const port = await new Promise((resolve, reject) => {
    child.stdout.on('data', (d) => {
      stdout += d;
      const m = /listening (\d+)/.exec(stdout);
      if (m) resolve(Number(m[1]));
    });
    child.on('exit', (code) => reject(new Error(`${framework} ${variant} exited (${code}) before listening:\n${stderr}`)));
  });
  const exited = once(child, 'exit');
  // Under valgrind a garbage collection or a compilation can stall the server for seconds.
  const load = await autocannon({ url: `http://127.0.0.1:${port}/users/42`, connections: CONNECTIONS, amount: requests, timeout: 300 });
  await exited;
  const m = /Collected : (\d+)/.exec(stderr);
  if (!m) throw new Error(`no instruction count from callgrind for ${framework} ${variant}:\n${stderr}`);
  if (load.non2xx + load.errors > 0) throw new Error(`${framework} ${variant}: ${load.non2xx} non-2xx answers, ${load.errors} errors`);
  return Number(m[1]);
}

async function perRequest(framework, variant) {
  // One after the other, and by default one request at a time: how many requests a server takes per
  // wake-up depends on how fast it is against its client, and that moves the count per request by up
  // to 10% when the two share the machine with other work (more with many connections).
  const short = await count(framework, variant, SHORT);
  const long = await count(framework, variant, LONG);
  const value = Math.round((long - short) / (LONG - SHORT));
  process.stderr.write(`${framework} ${variant}: ${value} instructions per request\n`);
  return value;
}

const out = { suite: 'http-instructions', node: process.version, date: new Date().toISOString(), short: SHORT, long: LONG, connections: CONNECTIONS, frameworks: {} };
for (const framework of frameworks) {
  const counts = {};
  for (const variant of variants) counts[variant] = await perRequest(framework, variant);
  console.log(`\n### ${framework}: instructions per request (callgrind, ${SHORT} and ${LONG} requests, ${CONNECTIONS} connection${CONNECTIONS === 1 ? '' : 's'})\n`);
  console.log('| variant | instructions per request | plain / variant |');
  console.log('|---|---:|---:|');
  for (const variant of variants) {
    const ratio = counts.plain === undefined ? '' : (counts.plain / counts[variant]).toFixed(3);
    console.log(`| ${variant} | ${counts[variant].toLocaleString('en-US')} | ${ratio} |`);
  }
  out.frameworks[framework] = counts;
}
saveResults(`http-instructions${frameworkArg ? `-${frameworkArg}` : ''}`, out);
