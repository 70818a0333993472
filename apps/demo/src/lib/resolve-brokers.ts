import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { accessSync, constants as fsConstants } from 'node:fs';
import { connect as connectTcp } from 'node:net';
import path from 'node:path';
import amqplib from 'amqplib';
import { Redis } from 'ioredis';
import { DEFAULT_AMQP_URL, DEFAULT_REDIS_URL, REPO_ROOT } from './config.js';
import { StandinBus } from '../standin/StandinBus.js';
import { StandinRedis } from '../standin/StandinRedis.js';

/** How one broker is provided for this run. */
export interface BrokerChoice {
  broker: 'RabbitMQ' | 'Kafka' | 'Redis';
  /** `real`: the configured broker; `test-broker`: the repo's Kafka mock, started for this run; `stand-in`: in-process. */
  mode: 'real' | 'test-broker' | 'stand-in';
  /** What the services connect to. */
  url: string;
  /** One line for the output: what was tried and what is used. */
  note: string;
}

export interface ResolvedBrokers {
  amqp: BrokerChoice;
  kafka: BrokerChoice;
  redis: BrokerChoice;
  /** The environment the services get. */
  env: { AMQP_URL: string; KAFKA_BROKERS: string; REDIS_URL: string };
  /** What went through the stand-ins, when any ran. */
  standinCounts(): Record<string, Record<string, number>>;
  /** Stops the stand-ins and a test broker started here. */
  close(): Promise<void>;
}

/** Passwords stay out of the output. */
export function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString().replace(/\/$/, '');
  } catch {
    return url;
  }
}

async function amqpReachable(url: string): Promise<string | undefined> {
  try {
    const connection = await amqplib.connect(url, { timeout: 2000 });
    await connection.close();
    return undefined;
  } catch (error) {
    return (error as Error).message || String(error);
  }
}

async function redisReachable(url: string): Promise<string | undefined> {
  const client = new Redis(url, { lazyConnect: true, connectTimeout: 1500, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false });
  // The probe's own connection errors are the answer, not something to log; the socket's error says
  // more than the "Connection is closed" that connect() rejects with.
  let cause: string | undefined;
  client.on('error', (error: Error) => {
    cause ??= error.message;
  });
  try {
    await client.connect();
    await client.ping();
    return undefined;
  } catch (error) {
    return cause ?? ((error as Error).message || String(error));
  } finally {
    client.disconnect();
  }
}

function tcpReachable(hostPort: string, timeoutMs = 1500): Promise<string | undefined> {
  const at = hostPort.lastIndexOf(':');
  const host = at > 0 ? hostPort.slice(0, at).replace(/^\[|\]$/g, '') : hostPort;
  const port = at > 0 ? Number(hostPort.slice(at + 1)) : 9092;
  return new Promise((resolve) => {
    const socket = connectTcp({ host, port });
    const done = (why?: string): void => {
      socket.destroy();
      resolve(why);
    };
    socket.setTimeout(timeoutMs, () => done('timed out'));
    socket.once('connect', () => done());
    socket.once('error', (error) => done(error.message));
  });
}

/**
 * The repo's Kafka test broker (librdkafka's mock cluster, tools/kafka-mock), started for this run
 * as a child of the launcher and stopped with it. Built first when the binary is missing and gcc,
 * pkg-config and librdkafka's headers are there; nothing is installed.
 */
async function startTestBroker(topics: string[]): Promise<{ address: string; child: ChildProcess } | { error: string }> {
  const dir = path.join(REPO_ROOT, 'tools', 'kafka-mock');
  const binary = path.join(dir, 'build', 'broker');
  const executable = (): boolean => {
    try {
      accessSync(binary, fsConstants.X_OK);
      return true;
    } catch {
      return false;
    }
  };
  if (!executable()) {
    const deps = spawnSync('bash', ['-c', 'command -v gcc >/dev/null && pkg-config --exists rdkafka'], { stdio: 'ignore' });
    if (deps.status !== 0) return { error: 'the Kafka test broker is not built and gcc/pkg-config/librdkafka-dev are missing' };
    const built = spawnSync('bash', [path.join(dir, 'build.sh')], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 120_000 });
    if (built.status !== 0 || !executable()) return { error: `building the Kafka test broker failed: ${String(built.stderr).trim().split('\n').pop()}` };
  }
  const child = spawn(binary, topics.map((t) => `${t}:1`), { stdio: ['ignore', 'pipe', 'ignore'] });
  return new Promise((resolve) => {
    let out = '';
    const timer = setTimeout(() => {
      child.kill('SIGTERM');
      resolve({ error: 'the Kafka test broker printed no address within 5 s' });
    }, 5000);
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => {
      out += chunk;
      const line = out.split('\n')[0];
      if (out.includes('\n') && line) {
        clearTimeout(timer);
        resolve({ address: line.trim(), child });
      }
    });
    child.once('error', (error) => {
      clearTimeout(timer);
      resolve({ error: error.message });
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ error: `the Kafka test broker exited with code ${String(code)}` });
    });
  });
}

/**
 * Decides, per broker, what this run uses: the configured broker when it answers; for Kafka with no
 * KAFKA_BROKERS, the repo's test broker if it can run; otherwise a stand-in served by the launcher.
 * Every decision comes with a line that says so plainly.
 */
export async function resolveBrokers(env: NodeJS.ProcessEnv, topics: string[]): Promise<ResolvedBrokers> {
  const amqpUrl = env.AMQP_URL ?? DEFAULT_AMQP_URL;
  const redisUrl = env.REDIS_URL ?? DEFAULT_REDIS_URL;
  const kafkaSetting = env.KAFKA_BROKERS?.trim() || undefined;

  const [amqpProblem, redisProblem, kafkaProblem] = await Promise.all([
    amqpReachable(amqpUrl),
    redisReachable(redisUrl),
    kafkaSetting === undefined ? Promise.resolve('KAFKA_BROKERS is not set') : tcpReachable(kafkaSetting.split(',')[0]!.trim()),
  ]);

  let bus: StandinBus | undefined;
  let standinRedis: StandinRedis | undefined;
  let testBroker: ChildProcess | undefined;
  const busUrl = async (): Promise<string> => {
    if (!bus) {
      bus = new StandinBus();
      await bus.listen();
    }
    return bus.url;
  };

  const amqp: BrokerChoice = amqpProblem === undefined
    ? { broker: 'RabbitMQ', mode: 'real', url: amqpUrl, note: `${redact(amqpUrl)} (reachable)` }
    : { broker: 'RabbitMQ', mode: 'stand-in', url: await busUrl(), note: `${redact(amqpUrl)} NOT reachable (${amqpProblem}): using an in-process stand-in, not RabbitMQ` };

  let redis: BrokerChoice;
  if (redisProblem === undefined) {
    redis = { broker: 'Redis', mode: 'real', url: redisUrl, note: `${redact(redisUrl)} (reachable)` };
  } else {
    standinRedis = new StandinRedis();
    const url = await standinRedis.listen();
    redis = { broker: 'Redis', mode: 'stand-in', url, note: `${redact(redisUrl)} NOT reachable (${redisProblem}): using an in-process stand-in, not Redis` };
  }

  let kafka: BrokerChoice;
  if (kafkaSetting !== undefined && kafkaProblem === undefined) {
    kafka = { broker: 'Kafka', mode: 'real', url: kafkaSetting, note: `${kafkaSetting} (reachable)` };
  } else if (kafkaSetting !== undefined) {
    kafka = { broker: 'Kafka', mode: 'stand-in', url: await busUrl(), note: `${kafkaSetting} NOT reachable (${kafkaProblem}): using an in-process stand-in, not Kafka` };
  } else {
    const started = await startTestBroker(topics);
    if ('address' in started) {
      testBroker = started.child;
      kafka = { broker: 'Kafka', mode: 'test-broker', url: started.address, note: `KAFKA_BROKERS is not set: started the repo's test broker (librdkafka mock, tools/kafka-mock) on ${started.address} for this run` };
    } else {
      kafka = { broker: 'Kafka', mode: 'stand-in', url: await busUrl(), note: `KAFKA_BROKERS is not set and ${started.error}: using an in-process stand-in, not Kafka` };
    }
  }

  return {
    amqp,
    kafka,
    redis,
    env: { AMQP_URL: amqp.url, KAFKA_BROKERS: kafka.url, REDIS_URL: redis.url },
    standinCounts() {
      const counts: Record<string, Record<string, number>> = {};
      if (bus) counts.bus = { ...bus.counts };
      if (standinRedis) counts.redis = { ...standinRedis.counts };
      return counts;
    },
    async close() {
      await bus?.close();
      await standinRedis?.close();
      if (testBroker && testBroker.exitCode === null) {
        const exited = new Promise((resolve) => testBroker!.once('exit', resolve));
        testBroker.kill('SIGTERM');
        await exited;
      }
    },
  };
}
