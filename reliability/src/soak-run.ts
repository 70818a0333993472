/**
 * The soak's launcher, run under `cyb trace` by soak.js: starts the demo's eight service processes
 * (apps/demo), then drives its seeded traffic through the gateway without a pause for `--minutes`,
 * counting answers, latencies and the insights that come back over the event stream. Every interval
 * it appends a line of traffic figures to `<CYB_SOAK_SAMPLES>/traffic.jsonl`. Brokers come from the
 * environment (AMQP_URL, REDIS_URL, KAFKA_BROKERS), as soak.js resolved them.
 *
 *   node reliability/dist/src/soak-run.js --minutes 3 --concurrency 4 --seed 42
 */
import { fork, type ChildProcess } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { connectAmqp, redisClient } from '@cyb/demo/dist/src/lib/brokers.js';
import { demoNames, SYSTEMS } from '@cyb/demo/dist/src/lib/config.js';
import type { ServiceMessage } from '@cyb/demo/dist/src/lib/service.js';
import { planTraffic, runTraffic, type SentRequest } from '@cyb/demo/dist/src/traffic.js';

const DEMO_SRC = path.join(path.dirname(fileURLToPath(import.meta.resolve('@cyb/demo/package.json'))), 'dist', 'src');
const START_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 10_000;
/** Random pipeline requests per round, on top of the plan's every-operation-and-error-path part. */
const EXTRA_PER_ROUND = 40;

/** One line of traffic.jsonl: what the gateway's clients saw during one interval. */
export interface TrafficSample {
  t: number;
  requests: number;
  /** Answers other than the one the plan expected. */
  unexpected: number;
  /** Insights that came back over the event stream. */
  events: number;
  latencyP50: number;
  latencyP99: number;
  deadLettersPurged: number;
  /** The last line: no new requests, only the insights of the last ones coming back. */
  settling: boolean;
}

interface Service {
  label: string;
  child: ChildProcess;
  ready: Promise<Record<string, unknown>>;
  exited: Promise<number>;
}

function say(text: string): void {
  process.stdout.write(`[soak] ${text}\n`);
}

function startService(script: string, args: string[], env: NodeJS.ProcessEnv, label: string): Service {
  const child = fork(path.join(DEMO_SRC, script), args, { env, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const exited = new Promise<number>((resolve) => child.once('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1))));
  const ready = new Promise<Record<string, unknown>>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${label} did not start within ${START_TIMEOUT_MS / 1000} s`)), START_TIMEOUT_MS);
    child.on('message', (message: ServiceMessage) => {
      if (message.type === 'ready') {
        clearTimeout(timer);
        resolve(message.info);
      } else if (message.type === 'failed') {
        clearTimeout(timer);
        reject(new Error(`${label} failed to start: ${message.error}`));
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`${label} exited with ${code} before it was ready`));
    });
  });
  ready.catch(() => undefined);
  return { label, child, ready, exited };
}

async function stopService(service: Service): Promise<number> {
  if (service.child.exitCode !== null || service.child.signalCode !== null) return service.exited;
  if (service.child.connected) service.child.send({ type: 'stop' } satisfies ServiceMessage);
  else service.child.kill('SIGTERM');
  const timer = setTimeout(() => service.child.kill('SIGKILL'), STOP_TIMEOUT_MS);
  const code = await service.exited;
  clearTimeout(timer);
  return code;
}

/** Counts server-sent events on `GET /v1/events` without keeping them. */
function countEvents(base: string): { count: () => number; opened: Promise<void>; close: () => void } {
  const abort = new AbortController();
  let count = 0;
  let markOpen!: () => void;
  const opened = new Promise<void>((resolve) => (markOpen = resolve));
  void (async () => {
    try {
      const res = await fetch(`${base}/v1/events`, { signal: abort.signal, headers: { accept: 'text/event-stream' } });
      markOpen();
      const decoder = new TextDecoder();
      let pending = '';
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        pending += decoder.decode(chunk, { stream: true });
        const blocks = pending.split('\n\n');
        pending = blocks.pop() ?? '';
        for (const block of blocks) if (block.includes('\ndata:') || block.startsWith('data:')) count++;
      }
    } catch {
      // Aborted at the end of the run.
    }
  })();
  return { count: () => count, opened, close: () => abort.abort() };
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      minutes: { type: 'string', default: '3' },
      concurrency: { type: 'string', default: '4' },
      seed: { type: 'string', default: '42' },
    },
  });
  const minutes = Number(values.minutes);
  const concurrency = Math.max(1, Number(values.concurrency) || 4);
  const seed = Number(values.seed) || 42;
  const samplesDir = process.env.CYB_SOAK_SAMPLES;
  const intervalMs = Math.max(100, Number(process.env.CYB_SOAK_INTERVAL_MS) || 10_000);
  const namespace = process.env.CYB_DEMO_NS;
  if (!(minutes > 0) || samplesDir === undefined || namespace === undefined) {
    process.stderr.write('soak-run: needs --minutes > 0, CYB_SOAK_SAMPLES and CYB_DEMO_NS (run it through soak.js)\n');
    return 2;
  }
  const names = demoNames(namespace);
  const env: NodeJS.ProcessEnv = { ...process.env };

  const connection = await connectAmqp(env.AMQP_URL!);
  const channel = await connection.createChannel();
  await channel.assertExchange(names.exchange, 'topic', { durable: false });
  await channel.assertQueue(names.deadLetterQueue, { durable: true });

  const services: Service[] = [];
  let failure: Error | undefined;
  const totals = { requests: 0, unexpected: 0, expectedEvents: 0, events: 0, rounds: 0 };
  const unexpectedKinds = new Map<string, number>();
  let events: ReturnType<typeof countEvents> | undefined;
  try {
    const model = startService('model-service.js', [], env, 'model service');
    services.push(model);
    for (const system of SYSTEMS) services.push(startService('worker.js', [system], env, `worker ${system}`));
    services.push(startService('insights-consumer.js', [], env, 'insights consumer'));
    const modelInfo = await model.ready;
    const gateway = startService('gateway.js', [], { ...env, MODEL_SERVICE_URL: String(modelInfo.url) }, 'gateway');
    services.push(gateway);
    await Promise.all(services.map((s) => s.ready));
    const base = String((await gateway.ready).url);
    say(`${services.length} services up; traffic for ${minutes} min, ${concurrency} in flight`);

    events = countEvents(base);
    await events.opened;
    let interval: { started: number; latencies: number[]; requests: number; unexpected: number; eventsAt: number; purged: number } = {
      started: Date.now(), latencies: [], requests: 0, unexpected: 0, eventsAt: 0, purged: 0,
    };
    const flush = async (settling = false): Promise<void> => {
      // Dead letters are the plan's own error paths; purged so the broker's queue stays flat too.
      const purged = (await channel.purgeQueue(names.deadLetterQueue)).messageCount;
      const sorted = interval.latencies.sort((a, b) => a - b);
      const sample: TrafficSample = {
        t: Date.now(),
        requests: interval.requests,
        unexpected: interval.unexpected,
        events: events!.count() - interval.eventsAt,
        latencyP50: percentile(sorted, 50),
        latencyP99: percentile(sorted, 99),
        deadLettersPurged: interval.purged + purged,
        settling,
      };
      appendFileSync(path.join(samplesDir, 'traffic.jsonl'), `${JSON.stringify(sample)}\n`);
      const seconds = (sample.t - interval.started) / 1000;
      say(`${(sample.requests / seconds).toFixed(1)} req/s, ${(sample.events / seconds).toFixed(1)} insights/s, p50 ${sample.latencyP50} ms, p99 ${sample.latencyP99} ms, unexpected ${sample.unexpected}`);
      interval = { started: sample.t, latencies: [], requests: 0, unexpected: 0, eventsAt: events!.count(), purged: 0 };
    };

    const deadline = Date.now() + minutes * 60_000;
    let nextFlush = Date.now() + intervalMs;
    for (let round = 0; Date.now() < deadline; round++) {
      const results: SentRequest[] = await runTraffic(base, planTraffic(seed + round, EXTRA_PER_ROUND), concurrency);
      totals.rounds++;
      for (const r of results) {
        interval.requests++;
        interval.latencies.push(r.durationMs);
        totals.requests++;
        if (!r.ok) {
          interval.unexpected++;
          totals.unexpected++;
          const key = `${r.label}: ${r.status || r.error}`;
          unexpectedKinds.set(key, (unexpectedKinds.get(key) ?? 0) + 1);
        }
        if (r.expectEvent && r.status === 202) totals.expectedEvents++;
      }
      if (Date.now() >= nextFlush) {
        await flush();
        nextFlush += intervalMs;
      }
    }
    // The last requests' insights are still on their way through S1..S4, Kafka and Redis.
    const settleUntil = Date.now() + 15_000;
    while (events.count() < totals.expectedEvents && Date.now() < settleUntil) await new Promise((resolve) => setTimeout(resolve, 100));
    await flush(true);
    totals.events = events.count();
  } catch (error) {
    failure = error as Error;
    say(`failed: ${failure.message}`);
  } finally {
    events?.close();
  }

  const codes = await Promise.all(services.map(stopService));
  const unclean = services.filter((_, i) => codes[i] !== 0).map((s, i) => `${s.label} (${codes[i]})`);
  for (const system of SYSTEMS) await channel.deleteQueue(names.queue(system));
  await channel.deleteQueue(names.deadLetterQueue);
  await channel.deleteExchange(names.exchange);
  await channel.close();
  await connection.close();
  const redis = redisClient(env.REDIS_URL!);
  const keys = await redis.keys(`${names.statePrefix}*`);
  if (keys.length > 0) await redis.del(...keys);
  await redis.quit();

  appendFileSync(path.join(samplesDir, 'totals.json'), JSON.stringify({ ...totals, unexpectedKinds: Object.fromEntries(unexpectedKinds), unclean, failure: failure?.message ?? null }));
  say(`${totals.requests} requests in ${totals.rounds} rounds, ${totals.unexpected} unexpected answers, ${totals.events} of ${totals.expectedEvents} insights back${unclean.length > 0 ? `; unclean exits: ${unclean.join(', ')}` : ''}`);
  return failure === undefined && unclean.length === 0 && totals.unexpected === 0 ? 0 : 1;
}

process.exitCode = await main();
