import assert from 'node:assert/strict';
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { assertDemoTraces, assertDiff, assertErrorPaths, runDemo, type DemoResult } from './helpers.js';

// The demo end to end on the brokers `npm test` provides (tools/test.sh exports AMQP_URL, REDIS_URL
// and KAFKA_BROKERS). A broker that cannot be reached would turn into a stand-in; the first test
// fails then, so this file never passes on stand-ins.
describe('npm run demo on the real brokers', () => {
  let result: DemoResult;

  before(async () => {
    result = await runDemo(process.env);
  });

  it('runs on RabbitMQ, Kafka and Redis, exits 0 and finishes well within a minute', () => {
    assert.equal(result.code, 0, `run-demo exited ${result.code}\n${result.stdout.slice(-3000)}\n${result.stderr.slice(-3000)}`);
    assert.equal(result.run.brokers.amqp.mode, 'real', result.run.brokers.amqp.note);
    assert.equal(result.run.brokers.redis.mode, 'real', result.run.brokers.redis.note);
    assert.notEqual(result.run.brokers.kafka.mode, 'stand-in', result.run.brokers.kafka.note);
    assert.doesNotMatch(result.stdout, /stand-in/i);
    assert.ok(result.seconds < 45, `the whole run took ${result.seconds.toFixed(1)} s`);
  });

  it('gives every request one trace with an unbroken parent chain, three or more processes for work on the bus', () => {
    assertDemoTraces(result);
    // The main path crosses every process: gateway, model service, S1-S5, the insights consumer.
    const main = result.run.requests.find((r) => r.label === 's1.operation')!;
    const spans = result.dynamic.traces.find((t) => t.trace_id === main.traceId)!.spans;
    const services = new Set(spans.map((s) => s.metadata['service.name']));
    assert.deepEqual([...services].sort(), ['demo-gateway', 'demo-insights', 'demo-model-service', 'demo-s1', 'demo-s2', 'demo-s3', 'demo-s4', 'demo-s5']);
  });

  it('shows the error paths as error spans', () => {
    assertErrorPaths(result);
  });

  it('lists the dispatch and broker hops as invisible, and nothing else', () => {
    assertDiff(result);
  });

  it('writes every output into one folder and prints the summary', () => {
    for (const name of ['dynamic-traces.json', 'archeology-results.json', 'diff.json', 'diff.txt', 'report.html', 'run.json']) {
      const file = path.join(result.out, name);
      assert.ok(existsSync(file) && statSync(file).size > 0, `${name} is missing or empty`);
    }
    assert.match(result.stdout, /Invisible dependencies: 23 \(2 dynamic-dispatch, 18 message, 3 http\)/);
    assert.match(result.stdout, new RegExp(`traces +${result.dynamic.summary.trace_count} `));
    assert.match(result.stdout, new RegExp(`spans +${result.dynamic.summary.total_spans}\\n`));
    assert.match(result.stdout, /processes +8: /);
    assert.match(result.stdout, /transports +HTTP server \(Express\), HTTP server \(Koa\), HTTP client \(fetch\), RabbitMQ, Kafka, Redis pub\/sub, Redis VSM state bridge/);
  });
});
