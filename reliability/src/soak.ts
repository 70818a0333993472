/**
 * `npm run soak`: the demo's traffic against its traced services for some minutes, under `cyb trace`,
 * sampling every process (cyb trace itself, the launcher, the eight services) for resident memory,
 * heap, event-loop delay and spans finished, and the traffic for throughput and latency. Prints the
 * figures over time and per process, and writes them to reliability/results/soak.json.
 *
 *   npm run soak                              3 minutes
 *   npm run soak -- --minutes 10              (or CYB_SOAK_MINUTES=10 npm run soak)
 *   npm run soak -- -- --minutes 10 --interval 5
 *   node reliability/dist/src/soak.js --minutes 1 --interval 5 --concurrency 8
 *
 * Brokers: AMQP_URL, REDIS_URL and KAFKA_BROKERS as for the demo (`eval "$(tools/services.sh up)"`);
 * without KAFKA_BROKERS the repository's Kafka test broker is started for the run.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { demoNames } from '@cyb/demo/dist/src/lib/config.js';
import { resolveBrokers } from '@cyb/demo/dist/src/lib/resolve-brokers.js';
import type { SoakSample } from './soak-sampler.js';
import type { TrafficSample } from './soak-run.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const PACKAGE_ROOT = path.resolve(HERE, '..', '..');
const CYB = path.join(path.dirname(fileURLToPath(import.meta.resolve('@cyb/cli/package.json'))), 'dist', 'src', 'bin.js');
/**
 * Samples before this point are warm-up: JIT, connection pools, consumer group joins, and a
 * throughput that climbs for the first minute. At least 30 s, at most the first third of the run.
 */
const MIN_WARM_UP_S = 30;

function say(text = ''): void {
  process.stdout.write(`${text}\n`);
}

const OPTION_NAMES = ['minutes', 'interval', 'concurrency', 'seed', 'out'] as const;

/**
 * Options from the command line or the environment (`CYB_SOAK_MINUTES`, ...). Through the root's
 * `npm run soak -- --minutes 10` the inner `npm run` takes `--minutes` for its own configuration (it
 * sets `npm_config_minutes=true`) and passes `10` on as a bare argument: with one such option the bare
 * argument is its value. `npm run soak -- -- --minutes 10` passes the option through as it is.
 */
function readOptions(): Record<(typeof OPTION_NAMES)[number], string | undefined> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: Object.fromEntries(OPTION_NAMES.map((n) => [n, { type: 'string' }])) as Record<(typeof OPTION_NAMES)[number], { type: 'string' }>,
  });
  const takenByNpm = OPTION_NAMES.filter((n) => values[n] === undefined && process.env[`npm_config_${n}`] === 'true');
  if (positionals.length > 0) {
    if (takenByNpm.length !== 1 || positionals.length !== 1) {
      throw new Error(`unexpected arguments ${positionals.join(' ')}: use npm run soak -- -- --minutes N, or CYB_SOAK_MINUTES=N npm run soak`);
    }
    values[takenByNpm[0]!] = positionals[0];
  }
  const out = {} as Record<(typeof OPTION_NAMES)[number], string | undefined>;
  for (const n of OPTION_NAMES) out[n] = values[n] ?? process.env[`CYB_SOAK_${n.toUpperCase()}`];
  return out;
}

function table(header: string[], rows: (string | number)[][]): string {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => r[i]!.length)));
  const line = (r: string[]): string => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(cells[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.slice(1).map(line)].join('\n');
}

const round1 = (n: number): number => Math.round(n * 10) / 10;
const median = (list: number[]): number => {
  const s = [...list].sort((a, b) => a - b);
  return s.length === 0 ? 0 : s[Math.floor(s.length / 2)]!;
};

/** Least-squares slope of `[ms since epoch, value]` points, per minute. */
function slopePerMinute(points: [number, number][]): number {
  if (points.length < 2) return 0;
  const n = points.length;
  const mx = points.reduce((a, [x]) => a + x, 0) / n;
  const my = points.reduce((a, [, y]) => a + y, 0) / n;
  let num = 0;
  let den = 0;
  for (const [x, y] of points) {
    num += (x - mx) * (y - my);
    den += (x - mx) ** 2;
  }
  return den === 0 ? 0 : (num / den) * 60_000;
}

function readLines<T>(file: string): T[] {
  return readFileSync(file, 'utf8').split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as T);
}

async function main(): Promise<number> {
  let values: ReturnType<typeof readOptions>;
  try {
    values = readOptions();
  } catch (error) {
    process.stderr.write(`soak: ${(error as Error).message}\n`);
    return 2;
  }
  const minutes = Number(values.minutes ?? '3');
  const intervalS = Number(values.interval ?? '10');
  const concurrency = values.concurrency ?? '4';
  const seed = values.seed ?? '42';
  if (!(minutes > 0) || !(intervalS >= 1)) {
    process.stderr.write('soak: --minutes must be > 0 and --interval at least 1 (seconds)\n');
    return 2;
  }
  const outDir = path.resolve(values.out ?? path.join(PACKAGE_ROOT, 'results'));
  const samplesDir = path.join(outDir, 'soak-samples');
  rmSync(samplesDir, { recursive: true, force: true });
  mkdirSync(samplesDir, { recursive: true });
  const tracesFile = path.join(outDir, 'soak-traces.json');

  const namespace = `cyb-soak-${randomBytes(3).toString('hex')}`;
  const brokers = await resolveBrokers(process.env, [demoNames(namespace).insightsTopic]);
  say(`Soak: ${minutes} min of demo traffic (${concurrency} in flight, seed ${seed}), sampled every ${intervalS} s; namespace ${namespace}`);
  for (const b of [brokers.amqp, brokers.kafka, brokers.redis]) say(`  ${b.broker.padEnd(9)} ${b.note}`);

  const sampler = pathToFileURL(path.join(HERE, 'soak-sampler.js')).href;
  const started = Date.now();
  const code = await new Promise<number>((resolve) => {
    const child = spawn(process.execPath, [
      CYB, 'trace', '--max-traces', '1000', '--max-spans-per-trace', '200', '--grace', '3s', '-o', tracesFile, '--',
      process.execPath, path.join(HERE, 'soak-run.js'), '--minutes', String(minutes), '--concurrency', concurrency, '--seed', seed,
    ], {
      stdio: 'inherit',
      env: {
        ...process.env,
        ...brokers.env,
        CYB_DEMO_NS: namespace,
        CYB_SOAK_SAMPLES: samplesDir,
        CYB_SOAK_INTERVAL_MS: String(intervalS * 1000),
        NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import ${sampler}`.trim(),
      },
    });
    // Ctrl-C reaches cyb trace too, which stops the run and still writes its file; the figures follow.
    process.on('SIGINT', () => undefined);
    child.once('exit', (c, signal) => resolve(c ?? (signal ? 130 : 1)));
  });
  await brokers.close();

  // Per process: its samples over time.
  const processes = new Map<number, SoakSample[]>();
  for (const file of readdirSync(samplesDir).filter((f) => /^\d+\.jsonl$/.test(f))) {
    const samples = readLines<SoakSample>(path.join(samplesDir, file));
    if (samples.length > 0) processes.set(samples[0]!.pid, samples);
  }
  const traffic = existsSync(path.join(samplesDir, 'traffic.jsonl')) ? readLines<TrafficSample>(path.join(samplesDir, 'traffic.jsonl')) : [];
  const totals = existsSync(path.join(samplesDir, 'totals.json')) ? (JSON.parse(readFileSync(path.join(samplesDir, 'totals.json'), 'utf8')) as Record<string, unknown>) : {};
  const traces = existsSync(tracesFile) ? (JSON.parse(readFileSync(tracesFile, 'utf8')) as { summary: Record<string, unknown> }).summary : undefined;

  // Over time: traffic, and the processes' figures in the same interval.
  const all = [...processes.values()].flat();
  const intervals = traffic.map((tr, i) => {
    const from = i === 0 ? started : traffic[i - 1]!.t;
    const seconds = (tr.t - from) / 1000;
    const inWindow = all.filter((s) => s.t > from && s.t <= tr.t + 1000);
    const latest = new Map<number, SoakSample>();
    for (const s of inWindow) latest.set(s.pid, s);
    const rss = [...latest.values()];
    const byName = (name: string): number | undefined => rss.find((s) => s.name === name)?.rssMB;
    return {
      t: Math.round((tr.t - started) / 1000),
      reqPerS: round1(tr.requests / seconds),
      insightsPerS: round1(tr.events / seconds),
      spansPerS: round1(inWindow.reduce((n, s) => n + s.spans, 0) / seconds),
      latencyP50: tr.latencyP50,
      latencyP99: tr.latencyP99,
      unexpected: tr.unexpected,
      cybRssMB: byName('cyb trace') ?? null,
      gatewayRssMB: byName('gateway') ?? null,
      maxServiceRssMB: Math.max(0, ...rss.filter((s) => s.name !== 'cyb trace' && s.name !== 'launcher').map((s) => s.rssMB)),
      totalRssMB: round1(rss.reduce((n, s) => n + s.rssMB, 0)),
      maxEldP99: Math.max(0, ...inWindow.map((s) => s.eldP99)),
      settling: tr.settling,
    };
  });

  // Per process: memory after warm-up against the end (and its trend), event-loop delay, spans.
  const runMs = Date.now() - started;
  const warmUpMs = Math.max(MIN_WARM_UP_S * 1000, runMs / 3);
  const perProcess = [...processes.values()].map((samples) => {
    const first = samples[0]!;
    const warm = samples.find((s) => s.t - started >= warmUpMs) ?? samples[Math.floor(samples.length / 2)]!;
    const last = samples.at(-1)!;
    const after = samples.filter((s) => s.t >= warm.t);
    return {
      name: first.name,
      pid: first.pid,
      samples: samples.length,
      rssStartMB: first.rssMB,
      rssWarmMB: warm.rssMB,
      rssEndMB: last.rssMB,
      rssMaxMB: Math.max(...samples.map((s) => s.rssMB)),
      rssGrowthAfterWarmUpMB: round1(last.rssMB - warm.rssMB),
      rssTrendMBPerMin: round1(slopePerMinute(after.map((s) => [s.t, s.rssMB]))),
      heapWarmMB: warm.heapMB,
      heapEndMB: last.heapMB,
      eldP99MedianMs: median(after.map((s) => s.eldP99)),
      eldP99MaxMs: Math.max(...after.map((s) => s.eldP99)),
      eldMaxMs: Math.max(...after.map((s) => s.eldMax)),
      eldMaxWarmUpMs: Math.max(...samples.filter((s) => s.t < warm.t).map((s) => s.eldMax), 0),
      spans: samples.reduce((n, s) => n + s.spans, 0),
    };
  }).sort((a, b) => a.name.localeCompare(b.name));

  say();
  say('Over time');
  say(table(
    ['t (s)', 'req/s', 'insights/s', 'spans/s', 'p50 ms', 'p99 ms', 'unexpected', 'cyb trace RSS', 'gateway RSS', 'max service RSS', 'all RSS', 'max ELD p99 ms'],
    intervals.filter((r) => !r.settling).map((r) => [r.t, r.reqPerS, r.insightsPerS, r.spansPerS, r.latencyP50, r.latencyP99, r.unexpected, r.cybRssMB ?? '-', r.gatewayRssMB ?? '-', r.maxServiceRssMB, r.totalRssMB, r.maxEldP99]),
  ));
  say();
  say(`Per process (MB). After warm-up (the first ${Math.round(warmUpMs / 1000)} s): growth to the end, trend (least squares, MB/min),`);
  say('event-loop delay beyond a 10 ms timer (p99 median and max over intervals, and the worst single delay).');
  say(table(
    ['process', 'pid', 'RSS start', 'RSS warm', 'RSS end', 'RSS max', 'growth', 'trend/min', 'heap warm', 'heap end', 'ELD p99 median', 'ELD p99 max', 'ELD max', 'ELD max in warm-up', 'spans'],
    perProcess.map((p) => [p.name, p.pid, p.rssStartMB, p.rssWarmMB, p.rssEndMB, p.rssMaxMB, p.rssGrowthAfterWarmUpMB, p.rssTrendMBPerMin, p.heapWarmMB, p.heapEndMB, p.eldP99MedianMs, p.eldP99MaxMs, p.eldMaxMs, p.eldMaxWarmUpMs, p.spans]),
  ));
  say();
  say(`Totals: ${JSON.stringify(totals)}`);
  if (traces) say(`cyb trace kept: ${JSON.stringify(traces)}`);

  const result = {
    startedAt: new Date(started).toISOString(),
    minutes,
    intervalS,
    warmUpS: Math.round(warmUpMs / 1000),
    concurrency: Number(concurrency),
    seed: Number(seed),
    node: process.version,
    brokers: { amqp: brokers.amqp.note, kafka: brokers.kafka.note, redis: brokers.redis.note },
    exitCode: code,
    totals,
    cybTraceSummary: traces ?? null,
    intervals,
    processes: perProcess,
    samples: Object.fromEntries([...processes.entries()].map(([pid, s]) => [`${s[0]!.name} (${pid})`, s])),
  };
  mkdirSync(outDir, { recursive: true });
  writeFileSync(path.join(outDir, 'soak.json'), `${JSON.stringify(result, null, 2)}\n`);
  say(`Wrote ${path.relative(process.cwd(), path.join(outDir, 'soak.json'))}`);
  return code;
}

process.exitCode = await main();
