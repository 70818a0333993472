import amqplib, { type Channel } from 'amqplib';
import { Redis } from 'ioredis';
import { Kafka, logLevel, type Consumer, type Producer } from 'kafkajs';
import { STANDIN_SCHEME } from './config.js';
import { connectStandinAmqp } from '../standin/StandinAmqp.js';
import { standinKafka } from '../standin/StandinKafka.js';

/**
 * Broker clients for the services. A URL with the `cyb-standin:` scheme means the launcher could not
 * reach the real broker and serves a stand-in; everything past this file is the same either way,
 * and typed as amqplib and kafkajs objects because that is the surface the stand-ins reproduce.
 */

export interface AmqpConnection {
  createChannel(): Promise<Channel>;
  close(): Promise<void>;
}

export function isStandin(url: string): boolean {
  return url.startsWith(STANDIN_SCHEME);
}

export async function connectAmqp(url: string): Promise<AmqpConnection> {
  if (isStandin(url)) {
    const connection = await connectStandinAmqp(url);
    return {
      createChannel: async () => (await connection.createChannel()) as unknown as Channel,
      close: () => connection.close(),
    };
  }
  const connection = await amqplib.connect(url);
  return {
    createChannel: () => connection.createChannel(),
    close: () => connection.close(),
  };
}

export interface KafkaClients {
  producer(): Producer;
  consumer(groupId: string): Consumer;
}

export function kafkaClients(brokers: string[], clientId: string): KafkaClients {
  const first = brokers[0] ?? '';
  if (isStandin(first)) {
    const kafka = standinKafka(first);
    return {
      producer: () => kafka.producer() as unknown as Producer,
      consumer: (groupId) => kafka.consumer({ groupId }) as unknown as Consumer,
    };
  }
  // kafkajs logs its own retries at info level; the demo's output stays readable with errors only.
  const kafka = new Kafka({ clientId, brokers, logLevel: logLevel.ERROR, retry: { retries: 5, initialRetryTime: 100 } });
  return {
    // No idempotence and no admin calls: the librdkafka mock broker used in tests does not serve them.
    producer: () => kafka.producer({ allowAutoTopicCreation: true }),
    // A short session keeps the first group join quick (see DESIGN.md on the test broker).
    consumer: (groupId) => kafka.consumer({ groupId, sessionTimeout: 6000, heartbeatInterval: 500, maxWaitTimeInMs: 100, rebalanceTimeout: 6000 }),
  };
}

export function redisClient(url: string): Redis {
  // Fail fast rather than queue forever when the server goes away during shutdown.
  return new Redis(url, { maxRetriesPerRequest: 2, lazyConnect: false });
}
