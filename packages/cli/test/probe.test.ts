import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { PACKAGE_ROOT, runCyb } from './helpers.js';

const AMQP_URL = process.env.AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const KAFKA_LAUNCHER = path.resolve(PACKAGE_ROOT, '..', '..', 'tools', 'kafka-mock', 'build', 'broker');

interface ProbeJson {
  results: { transport: string; reachable: boolean; sent: boolean; received: boolean; context_survived: boolean; trace_id: string | null; headers: Record<string, string>; error: string | null }[];
}

/** KAFKA_BROKERS when set, else the repository's mock broker started for this suite. */
async function kafkaBrokers(): Promise<{ brokers: string; broker?: ChildProcess }> {
  if (process.env.KAFKA_BROKERS) return { brokers: process.env.KAFKA_BROKERS };
  assert.ok(existsSync(KAFKA_LAUNCHER), `no KAFKA_BROKERS and no test broker at ${KAFKA_LAUNCHER} (tools/kafka-mock/build.sh builds it)`);
  const broker = spawn(KAFKA_LAUNCHER, [], { stdio: ['ignore', 'pipe', 'ignore'] });
  const brokers = await new Promise<string>((resolve, reject) => {
    let text = '';
    broker.stdout!.setEncoding('utf8').on('data', (t: string) => {
      text += t;
      if (text.includes('\n')) resolve(text.split('\n')[0]!.trim());
    });
    broker.once('exit', (code) => reject(new Error(`test broker exited with ${code}`)));
  });
  return { brokers, broker };
}

describe('cyb probe', () => {
  let kafka: { brokers: string; broker?: ChildProcess };
  before(async () => {
    kafka = await kafkaBrokers();
  });
  after(() => {
    kafka?.broker?.kill('SIGTERM');
  });

  it('sends a traced message through RabbitMQ, Kafka and Redis and sees the context survive each', async () => {
    const result = await runCyb(['probe', '--amqp', AMQP_URL, '--kafka', kafka.brokers, '--redis', REDIS_URL, '--json'], { timeoutMs: 40_000 });
    assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}`);
    const { results } = JSON.parse(result.stdout) as ProbeJson;
    assert.deepEqual(results.map((r) => r.transport), ['amqp', 'kafka', 'redis']);
    for (const r of results) {
      assert.deepEqual([r.reachable, r.sent, r.received, r.context_survived, r.error], [true, true, true, true, null], r.transport);
      // The headers on the wire carry the trace both as W3C traceparent and as B3.
      assert.match(r.headers.traceparent ?? '', new RegExp(`^00-${r.trace_id}-[0-9a-f]{16}-0[13]$`), r.transport);
      assert.match(r.headers.b3 ?? '', new RegExp(`^${r.trace_id}-[0-9a-f]{16}-1$`), r.transport);
    }
  });

  it('reports an unreachable broker and exits 1', async () => {
    const result = await runCyb(['probe', '--redis', 'redis://127.0.0.1:1', '--timeout', '5s']);
    assert.equal(result.code, 1);
    assert.match(result.stdout, /│ redis +│ redis:\/\/127\.0\.0\.1:1 +│ no +│ - +│ no +│ .*ECONNREFUSED/);
  });
});
