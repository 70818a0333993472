import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The demo's own directory (apps/demo). Handler locations are named relative to it, as
 * `cyb static apps/demo` names them, so the recorded spans and the static graph share one key.
 */
export const DEMO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/** The monorepo root, where `npm run demo` runs. */
export const REPO_ROOT = path.resolve(DEMO_ROOT, '..', '..');

export const DEFAULT_AMQP_URL = 'amqp://guest:guest@127.0.0.1:5672';
export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

/** URLs of the in-process stand-ins start with this scheme; real brokers never do. */
export const STANDIN_SCHEME = 'cyb-standin:';

/** The five systems of the Viable System Model and the operation each one performs on the main path. */
export const SYSTEMS = ['s1', 's2', 's3', 's4', 's5'] as const;
export type SystemName = (typeof SYSTEMS)[number];

export function isSystem(value: unknown): value is SystemName {
  return typeof value === 'string' && (SYSTEMS as readonly string[]).includes(value);
}

/** Every name the demo creates on the brokers, under one namespace so that runs never meet. */
export interface DemoNames {
  namespace: string;
  /** Topic exchange the systems talk through; routing key `<system>.<operation>`. */
  exchange: string;
  /** Where a message goes that no handler could take. */
  deadLetterQueue: string;
  /** Kafka topic S4 publishes insights to. */
  insightsTopic: string;
  /** Kafka consumer group of the insights consumer. */
  insightsGroup: string;
  /** Redis pub/sub channel the insights consumer announces results on; the gateway streams it. */
  eventsChannel: string;
  /** Prefix of the Redis keys of the VSM state bridge. */
  statePrefix: string;
  queue(system: SystemName): string;
}

export function demoNames(namespace: string): DemoNames {
  return {
    namespace,
    exchange: `${namespace}.vsm`,
    deadLetterQueue: `${namespace}.dead-letter`,
    insightsTopic: `${namespace}.insights`,
    insightsGroup: `${namespace}.insights-consumer`,
    eventsChannel: `${namespace}.events`,
    statePrefix: `${namespace}:state:`,
    queue: (system) => `${namespace}.${system}`,
  };
}

/** What every service process reads from its environment; the launcher sets all of it. */
export interface ServiceEnv {
  names: DemoNames;
  amqpUrl: string;
  redisUrl: string;
  kafkaBrokers: string[];
}

export function serviceEnv(env: NodeJS.ProcessEnv = process.env): ServiceEnv {
  const namespace = env.CYB_DEMO_NS ?? 'cyb-demo';
  return {
    names: demoNames(namespace),
    amqpUrl: env.AMQP_URL ?? DEFAULT_AMQP_URL,
    redisUrl: env.REDIS_URL ?? DEFAULT_REDIS_URL,
    kafkaBrokers: (env.KAFKA_BROKERS ?? '127.0.0.1:9092').split(',').map((b) => b.trim()).filter((b) => b !== ''),
  };
}
