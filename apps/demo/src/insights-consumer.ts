/**
 * The insights consumer: reads what S4 publishes to Kafka and announces each item on Redis pub/sub,
 * where the gateway picks it up for its event stream. Two broker hops, one trace.
 */
import type { EachMessagePayload } from 'kafkajs';
import { traceConsumer } from '@cyb/kafka';
import { traceRedis } from '@cyb/redis';
import { kafkaClients, redisClient } from './lib/brokers.js';
import { serviceEnv } from './lib/config.js';
import { runService } from './lib/service.js';
import { traced } from './lib/traced.js';

await runService('demo-insights', startInsightsConsumer);

async function startInsightsConsumer(): Promise<{ info: Record<string, unknown>; stop: () => Promise<void> }> {
  const env = serviceEnv();
  const { names } = env;
  const publisher = traceRedis(redisClient(env.redisUrl));
  let handled = 0;

  /** One insight from Kafka: stamp it and announce it to the gateway. */
  async function onInsight({ message }: EachMessagePayload): Promise<void> {
    const insight = JSON.parse(String(message.value)) as Record<string, unknown>;
    handled++;
    await publisher.publish(names.eventsChannel, JSON.stringify({ ...insight, offset: message.offset, seq: handled }));
  }

  const consumer = traceConsumer(kafkaClients(env.kafkaBrokers, 'demo-insights').consumer(names.insightsGroup), { groupId: names.insightsGroup });
  await consumer.connect();
  await consumer.subscribe({ topic: names.insightsTopic, fromBeginning: true });
  const joined = new Promise<void>((resolve) => {
    const off = consumer.on(consumer.events.GROUP_JOIN, () => {
      off();
      resolve();
    });
  });
  await consumer.run({ eachMessage: traced(onInsight) });
  // Ready once the group is joined, so the launcher's wait covers the broker's slow first join.
  await joined;

  return {
    info: { topic: names.insightsTopic, group: names.insightsGroup },
    async stop() {
      await consumer.disconnect();
      await publisher.quit();
    },
  };
}
