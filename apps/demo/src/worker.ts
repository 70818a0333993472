/**
 * One VSM system as a process: `node worker.js s3`. It consumes `<namespace>.<system>` from the
 * topic exchange through `consumeVsm`, which picks the handler by the routing key at run time, and
 * shares state with the other systems through the Redis bridge.
 */
import type { Producer } from 'kafkajs';
import { traceProducer } from '@cyb/kafka';
import { consumeVsm, createBridge, createVsm, type Vsm } from '@cyb/vsm';
import { connectAmqp, kafkaClients, redisClient } from './lib/brokers.js';
import { DEMO_ROOT, isSystem, serviceEnv, type SystemName } from './lib/config.js';
import { runService } from './lib/service.js';
import type { SystemDeps } from './systems/request.js';
import { Operations } from './systems/s1-operations.js';
import { Coordinator } from './systems/s2-coordination.js';
import { continuousAudit, sporadicAudit } from './systems/s3-audit.js';
import { Control } from './systems/s3-control.js';
import { Intelligence } from './systems/s4-intelligence.js';
import { Policy } from './systems/s5-policy.js';

const system = process.argv[2];
if (!isSystem(system)) {
  process.stderr.write(`usage: worker.js s1|s2|s3|s4|s5 (got ${String(system)})\n`);
  process.exitCode = 2;
} else {
  await runService(`demo-${system}`, () => startWorker(system));
}

/** The handlers of one system; S4 also gets a traced Kafka producer. */
function handlersFor(name: SystemName, deps: SystemDeps, producer: Producer | undefined, topic: string): object {
  switch (name) {
    case 's1':
      return new Operations(deps);
    case 's2':
      return new Coordinator(deps);
    case 's3': {
      // S3* (audit) has a dispatch table of its own, picked by kind inside S3's process.
      const audits: Vsm = createVsm({ root: DEMO_ROOT }).system('s3*', { sporadic: sporadicAudit, continuous: continuousAudit });
      return new Control(deps, audits);
    }
    case 's4':
      return new Intelligence(deps, producer!, topic);
    case 's5':
      return new Policy(deps);
  }
}

async function startWorker(name: SystemName): Promise<{ info: Record<string, unknown>; stop: () => Promise<void> }> {
  const env = serviceEnv();
  const { names } = env;
  const redis = redisClient(env.redisUrl);
  const bridge = createBridge(redis, { prefix: names.statePrefix, ttlMs: 10 * 60_000 });

  let producer: Producer | undefined;
  if (name === 's4') {
    producer = traceProducer(kafkaClients(env.kafkaBrokers, `demo-${name}`).producer());
    await producer.connect();
  }

  const connection = await connectAmqp(env.amqpUrl);
  const channel = await connection.createChannel();
  await channel.assertExchange(names.exchange, 'topic', { durable: false });
  const queue = names.queue(name);
  await channel.assertQueue(queue, { durable: false });
  await channel.bindQueue(queue, names.exchange, `${name}.*`);
  await channel.prefetch(16);

  const vsm = createVsm({ root: DEMO_ROOT }).system(name, handlersFor(name, { bridge }, producer, names.insightsTopic));
  const consumer = await consumeVsm(channel, queue, vsm, { deadLetter: { queue: names.deadLetterQueue } });

  return {
    info: { queue, operations: vsm.operations().map((o) => o.operation) },
    async stop() {
      await consumer.cancel();
      // Messages in flight finish and settle before the channel goes.
      await new Promise((resolve) => setTimeout(resolve, 50));
      await channel.close();
      await connection.close();
      await producer?.disconnect();
      await redis.quit();
    },
  };
}
