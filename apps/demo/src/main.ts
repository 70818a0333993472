/**
 * The launcher: picks the brokers (real, the repo's Kafka test broker, or stand-ins), starts the demo's
 * processes as children, runs the seeded traffic, waits for the work to settle, stops everything
 * cleanly and removes what it created on the brokers.
 *
 *   node apps/demo/dist/src/main.js [--seed 42] [--requests 16] [--out DIR]
 *
 * Run it under `cyb trace` (as `npm run demo` does) and every child process exports its spans.
 */
import { randomBytes } from 'node:crypto';
import { fork, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { connectAmqp, redisClient } from './lib/brokers.js';
import { demoNames, SYSTEMS, type DemoNames } from './lib/config.js';
import { resolveBrokers, type ResolvedBrokers } from './lib/resolve-brokers.js';
import type { ServiceMessage } from './lib/service.js';
import { EventListener, planReads, planTraffic, runTraffic, type SentRequest } from './traffic.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const START_TIMEOUT_MS = 30_000;
const SETTLE_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 8_000;

/** What the launcher writes to `<out>/run.json`: the facts the summary and the tests read. */
export interface RunRecord {
  namespace: string;
  seed: number;
  brokers: Record<'amqp' | 'kafka' | 'redis', { broker: string; mode: string; note: string }>;
  processes: { service: string; pid: number }[];
  requests: SentRequest[];
  events: { expected: number; received: number; missing: string[]; streamTraceId: string | null };
  deadLetters: { expected: number; found: number };
  standins: Record<string, Record<string, number>>;
  timings: { startMs: number; trafficMs: number; settleMs: number; stopMs: number; totalMs: number };
  ok: boolean;
}

interface ServiceHandle {
  service: string;
  child: ChildProcess;
  ready: Promise<{ pid: number; info: Record<string, unknown> }>;
  exited: Promise<number>;
}

function say(text: string): void {
  process.stdout.write(`${text}\n`);
}

function startService(script: string, args: string[], env: NodeJS.ProcessEnv, label: string): ServiceHandle {
  const child = fork(path.join(HERE, script), args, { env, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const exited = new Promise<number>((resolve) => child.once('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1))));
  const ready = new Promise<{ pid: number; info: Record<string, unknown> }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${label} did not start within ${START_TIMEOUT_MS / 1000} s`)), START_TIMEOUT_MS);
    child.on('message', (message: ServiceMessage) => {
      if (message.type === 'ready') {
        clearTimeout(timer);
        resolve({ pid: message.pid, info: message.info });
      } else if (message.type === 'failed') {
        clearTimeout(timer);
        reject(new Error(`${label} failed to start: ${message.error}`));
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`${label} exited with code ${code} before it was ready`));
    });
  });
  // A rejection nobody awaited yet (a sibling failed first) must not end the launcher.
  ready.catch(() => undefined);
  return { service: label, child, ready, exited };
}

async function stopService(handle: ServiceHandle): Promise<number> {
  if (handle.child.exitCode !== null || handle.child.signalCode !== null) return handle.exited;
  if (handle.child.connected) handle.child.send({ type: 'stop' } satisfies ServiceMessage);
  else handle.child.kill('SIGTERM');
  const timer = setTimeout(() => {
    say(`  ${handle.service} did not stop within ${STOP_TIMEOUT_MS / 1000} s; killing it`);
    handle.child.kill('SIGKILL');
  }, STOP_TIMEOUT_MS);
  const code = await handle.exited;
  clearTimeout(timer);
  return code;
}

/** Declares what the services share, so the launcher can watch the dead-letter queue from the start. */
async function prepareBrokers(brokers: ResolvedBrokers, names: DemoNames): Promise<{ deadLetters(): Promise<number>; cleanUp(): Promise<void> }> {
  const connection = await connectAmqp(brokers.env.AMQP_URL);
  const channel = await connection.createChannel();
  await channel.assertExchange(names.exchange, 'topic', { durable: false });
  // Same arguments as consumeVsm's own declaration of its default dead-letter queue.
  await channel.assertQueue(names.deadLetterQueue, { durable: true });
  return {
    async deadLetters() {
      return (await channel.checkQueue(names.deadLetterQueue)).messageCount;
    },
    async cleanUp() {
      for (const system of SYSTEMS) await channel.deleteQueue(names.queue(system));
      await channel.deleteQueue(names.deadLetterQueue);
      await channel.deleteExchange(names.exchange);
      await channel.close();
      await connection.close();
      const redis = redisClient(brokers.env.REDIS_URL);
      const keys = await redis.keys(`${names.statePrefix}*`);
      if (keys.length > 0) await redis.del(...keys);
      await redis.quit();
    },
  };
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      seed: { type: 'string', default: '42' },
      requests: { type: 'string', default: '16' },
      out: { type: 'string' },
      concurrency: { type: 'string', default: '4' },
    },
  });
  const seed = Number(values.seed);
  const extra = Number(values.requests);
  const concurrency = Math.max(1, Number(values.concurrency) || 4);
  if (!Number.isInteger(seed) || !Number.isInteger(extra) || extra < 0) {
    process.stderr.write('main: --seed and --requests take whole numbers\n');
    return 2;
  }
  const t0 = performance.now();
  const namespace = process.env.CYB_DEMO_NS ?? `cyb-demo-${randomBytes(3).toString('hex')}`;
  const names = demoNames(namespace);
  say(`Cybernetic Trace demo (namespace ${namespace}, seed ${seed})`);

  const brokers = await resolveBrokers(process.env, [names.insightsTopic]);
  say('Brokers:');
  for (const choice of [brokers.amqp, brokers.kafka, brokers.redis]) say(`  ${choice.broker.padEnd(9)} ${choice.note}`);

  const env: NodeJS.ProcessEnv = { ...process.env, ...brokers.env, CYB_DEMO_NS: namespace };
  const services: ServiceHandle[] = [];
  let interrupted = false;
  const onSignal = (): void => {
    interrupted = true;
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  let shared: Awaited<ReturnType<typeof prepareBrokers>> | undefined;
  let requests: SentRequest[] = [];
  let events: RunRecord['events'] = { expected: 0, received: 0, missing: [], streamTraceId: null };
  const deadLetters = { expected: 0, found: 0 };
  const timings = { startMs: 0, trafficMs: 0, settleMs: 0, stopMs: 0, totalMs: 0 };
  let failure: Error | undefined;
  try {
    shared = await prepareBrokers(brokers, names);
    const modelService = startService('model-service.js', [], env, 'model service');
    services.push(modelService);
    for (const system of SYSTEMS) services.push(startService('worker.js', [system], env, `worker ${system}`));
    services.push(startService('insights-consumer.js', [], env, 'insights consumer'));
    const { info: modelInfo } = await modelService.ready;
    const gateway = startService('gateway.js', [], { ...env, MODEL_SERVICE_URL: String(modelInfo.url) }, 'gateway');
    services.push(gateway);
    const started = await Promise.all(services.map((s) => s.ready));
    const gatewayUrl = String(started[services.indexOf(gateway)]!.info.url);
    timings.startMs = Math.round(performance.now() - t0);
    say(`Started ${services.length} processes in ${(timings.startMs / 1000).toFixed(1)} s; gateway on ${gatewayUrl}, model service on ${String(modelInfo.url)}`);

    // Traffic: the event stream first, so no insight is missed; then the plan; then reads of the state it left.
    const t1 = performance.now();
    const listener = new EventListener(gatewayUrl);
    await listener.opened;
    const plan = planTraffic(seed, extra);
    if (!interrupted) requests = await runTraffic(gatewayUrl, plan, concurrency);
    const expectedEvents = requests.filter((r) => r.expectEvent && r.status === 202 && r.requestId !== null).map((r) => r.requestId!);
    deadLetters.expected = requests.filter((r) => r.expectDeadLetter && r.status === 202).length;
    timings.trafficMs = Math.round(performance.now() - t1);

    const t2 = performance.now();
    const deadline = Date.now() + SETTLE_TIMEOUT_MS;
    const allEvents = (): boolean => expectedEvents.every((id) => listener.events.some((e) => e.requestId === id));
    while (!interrupted && Date.now() < deadline) {
      deadLetters.found = await shared.deadLetters();
      if (allEvents() && deadLetters.found >= deadLetters.expected) break;
      await listener.waitFor(allEvents, 200);
    }
    // Work that ends without an event (status reports, policy updates) is shorter than the path
    // through Kafka; a moment more lets the last of it finish before the reads and the stop.
    await new Promise((resolve) => setTimeout(resolve, 300));
    if (!interrupted) requests.push(...(await runTraffic(gatewayUrl, planReads(), concurrency)));
    deadLetters.found = await shared.deadLetters();
    await listener.close();
    const missing = expectedEvents.filter((id) => !listener.events.some((e) => e.requestId === id));
    events = { expected: expectedEvents.length, received: expectedEvents.length - missing.length, missing, streamTraceId: listener.traceId };
    timings.settleMs = Math.round(performance.now() - t2);

    const wrong = requests.filter((r) => !r.ok);
    const byKind = new Map<string, number>();
    for (const r of requests) byKind.set(r.kind, (byKind.get(r.kind) ?? 0) + 1);
    say(`Traffic: ${requests.length} requests (+1 event stream) in ${(timings.trafficMs / 1000).toFixed(1)} s: ${[...byKind].map(([k, n]) => `${n} ${k}`).join(', ')}`);
    for (const r of wrong) say(`  UNEXPECTED ${r.method} ${r.path} (${r.label}): got ${r.status || r.error}, expected ${r.expectStatus}`);
    say(`Events streamed back: ${events.received} of ${events.expected}; dead-lettered: ${deadLetters.found} of ${deadLetters.expected} expected`);
  } catch (error) {
    failure = error as Error;
    say(interrupted ? 'Interrupted; stopping.' : `The demo failed: ${failure.message}`);
  }

  const t3 = performance.now();
  const processes: RunRecord['processes'] = [];
  for (const s of services) if (s.child.pid !== undefined) processes.push({ service: s.service, pid: s.child.pid });
  const codes = await Promise.all(services.map(stopService));
  const badExits = services.filter((_, i) => codes[i] !== 0).map((s, i) => `${s.service} (${codes[i]})`);
  try {
    await shared?.cleanUp();
  } catch (error) {
    say(`Cleaning up the brokers failed: ${(error as Error).message}`);
  }
  const standins = brokers.standinCounts();
  await brokers.close();
  timings.stopMs = Math.round(performance.now() - t3);
  timings.totalMs = Math.round(performance.now() - t0);
  say(`Stopped ${services.length} processes in ${(timings.stopMs / 1000).toFixed(1)} s${badExits.length > 0 ? `; unclean exits: ${badExits.join(', ')}` : ''}`);
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);

  const ok = failure === undefined && !interrupted && badExits.length === 0 && requests.every((r) => r.ok) &&
    events.missing.length === 0 && deadLetters.found === deadLetters.expected;
  if (values.out) {
    const record: RunRecord = {
      namespace,
      seed,
      brokers: {
        amqp: { broker: brokers.amqp.broker, mode: brokers.amqp.mode, note: brokers.amqp.note },
        kafka: { broker: brokers.kafka.broker, mode: brokers.kafka.mode, note: brokers.kafka.note },
        redis: { broker: brokers.redis.broker, mode: brokers.redis.mode, note: brokers.redis.note },
      },
      processes,
      requests,
      events,
      deadLetters,
      standins,
      timings,
      ok,
    };
    mkdirSync(values.out, { recursive: true });
    writeFileSync(path.join(values.out, 'run.json'), `${JSON.stringify(record, null, 2)}\n`);
  }
  return ok ? 0 : 1;
}

process.exitCode = await main();
