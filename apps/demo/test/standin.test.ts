import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { before, describe, it } from 'node:test';
import { assertDemoTraces, assertDiff, assertErrorPaths, runDemo, type DemoResult } from './helpers.js';

/** A loopback port nothing listens on: bound, then released. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('npm run demo with no broker reachable', () => {
  let result: DemoResult;

  before(async () => {
    const [amqp, redis, kafka] = [await closedPort(), await closedPort(), await closedPort()];
    result = await runDemo({
      ...process.env,
      AMQP_URL: `amqp://guest:guest@127.0.0.1:${amqp}`,
      REDIS_URL: `redis://127.0.0.1:${redis}`,
      KAFKA_BROKERS: `127.0.0.1:${kafka}`,
    }, ['--requests', '6', '--seed', '7']);
  });

  it('says plainly that it runs on stand-ins, and still succeeds', () => {
    assert.equal(result.code, 0, `run-demo exited ${result.code}\n${result.stdout.slice(-3000)}\n${result.stderr.slice(-3000)}`);
    for (const key of ['amqp', 'kafka', 'redis'] as const) assert.equal(result.run.brokers[key].mode, 'stand-in');
    assert.match(result.stdout, /RabbitMQ +amqp:\/\/guest:\*\*\*@127\.0\.0\.1:\d+ NOT reachable \(.*ECONNREFUSED.*\): using an in-process stand-in, not RabbitMQ/);
    assert.match(result.stdout, /Kafka +127\.0\.0\.1:\d+ NOT reachable .*: using an in-process stand-in, not Kafka/);
    assert.match(result.stdout, /Redis +redis:\/\/127\.0\.0\.1:\d+ NOT reachable .*: using an in-process stand-in, not Redis/);
    assert.match(result.stdout, /brokers +RabbitMQ STAND-IN, Kafka STAND-IN, Redis STAND-IN/);
    assert.match(result.stdout, /Note: RabbitMQ, Kafka, Redis could not be reached/);
    // Messages really went through the stand-ins.
    assert.ok((result.run.standins.bus?.delivered ?? 0) > 0 && (result.run.standins.bus?.consumed ?? 0) > 0);
    assert.ok((result.run.standins.redis?.published ?? 0) > 0);
  });

  it('traces the same flows through the stand-ins as through the brokers', () => {
    assertDemoTraces(result);
    assertErrorPaths(result);
    assertDiff(result);
  });
});
