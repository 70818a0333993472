import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import amqp from 'amqplib';
import {
  FIXTURES, assertDynamicTraces, fnId, readJson, runCyb, startCyb, tempDir, waitFor,
} from './helpers.js';
import type { DynamicTraces } from '../src/index.js';

const AMQP_URL = process.env.AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
const LAUNCHER = path.join(FIXTURES, 'run-orders.mjs');

/** Unique broker names per run, so parallel test runs on the same RabbitMQ never meet. */
function brokerNames(): { ORDERS_EXCHANGE: string; ORDERS_QUEUE: string } {
  const suffix = randomBytes(4).toString('hex');
  return { ORDERS_EXCHANGE: `cyb-cli-orders-${suffix}`, ORDERS_QUEUE: `cyb-cli-worker-${suffix}` };
}

describe('cyb trace around a two-process program over RabbitMQ', () => {
  const created: { ORDERS_EXCHANGE: string; ORDERS_QUEUE: string }[] = [];
  let connection: amqp.ChannelModel;

  before(async () => {
    // The service must be there: a missing broker fails this suite rather than skipping it.
    connection = await amqp.connect(AMQP_URL);
  });

  after(async () => {
    const channel = await connection.createChannel();
    for (const names of created) {
      await channel.deleteQueue(names.ORDERS_QUEUE);
      await channel.deleteExchange(names.ORDERS_EXCHANGE);
    }
    await channel.close();
    await connection.close();
  });

  it('records one trace per request spanning both processes, and diff reports exactly the dispatch and broker edges', async () => {
    const names = brokerNames();
    created.push(names);
    const dir = tempDir();
    const dynamicFile = path.join(dir, 'dynamic-traces.json');
    const result = await runCyb(['trace', '-o', dynamicFile, '--', process.execPath, LAUNCHER, '4'], { env: { ...names, AMQP_URL } });
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /sent 4, gateway exit 0, worker exit 0/);

    const doc = readJson<DynamicTraces>(dynamicFile);
    assertDynamicTraces(doc);
    assert.equal(doc.traces.length, 4);
    assert.equal(doc.summary.total_spans, 20);
    assert.deepEqual([doc.summary.dropped_spans, doc.summary.evicted_traces, doc.summary.sampled_out], [0, 0, 0]);
    for (const trace of doc.traces) {
      assert.equal(trace.span_count, 5);
      assert.deepEqual(trace.entry_point, { type: 'http', module: 'src/gateway', function: 'createOrder', arity: 2, name: 'POST /orders' });
      const services = new Set(trace.spans.map((s) => `${String(s.metadata?.['service.name'])}/${String(s.metadata?.['process.pid'])}`));
      assert.equal(services.size, 2, `one trace spans both processes: ${[...services].join(', ')}`);
      const byFn = new Map(trace.spans.map((s) => [s.function, s]));
      const server = byFn.get('createOrder')!;
      const producer = byFn.get('OrderPublisher.publish')!;
      const consumer = byFn.get('handleDelivery')!;
      assert.equal(server.parent_span_id, null);
      assert.equal(producer.parent_span_id, server.span_id);
      assert.equal(consumer.parent_span_id, producer.span_id, 'the consumer continues the producer across the broker');
      assert.notEqual(consumer.metadata?.['process.pid'], producer.metadata?.['process.pid']);
      for (const s of trace.spans) assert.equal(s.trace_id, trace.trace_id);
    }
    assert.match(result.stderr, /traces.*spans.*processes/s);

    const archeologyFile = path.join(dir, 'archeology-results.json');
    const staticRun = await runCyb(['static', path.join(FIXTURES, 'orders'), '-o', archeologyFile]);
    assert.equal(staticRun.code, 0, staticRun.stderr);
    const diffRun = await runCyb(['diff', archeologyFile, dynamicFile, '--json']);
    assert.equal(diffRun.code, 0, diffRun.stderr);
    const diff = JSON.parse(diffRun.stdout) as {
      invisible: { from: { module: string; function: string; arity: number }; to: { module: string; function: string; arity: number }; kind: string; count: number; trace_ids: string[]; via: string[]; seen_in: string[] }[];
      summary: { exercised_static_edges: number };
    };
    assert.deepEqual(diff.invisible.map((e) => `${e.kind} ${fnId(e.from)} -> ${fnId(e.to)} x${e.count}`), [
      'dynamic-dispatch src/worker:handleDelivery/1 -> src/handlers:cancelOrder/1 x2',
      'dynamic-dispatch src/worker:handleDelivery/1 -> src/handlers:reserveStock/1 x2',
      'message src/publisher:OrderPublisher.publish/1 -> src/worker:handleDelivery/1 x4',
    ]);
    const message = diff.invisible[2]!;
    assert.deepEqual(message.via, [`rabbitmq ${names.ORDERS_EXCHANGE} (orders.cancel)`, `rabbitmq ${names.ORDERS_EXCHANGE} (orders.reserve)`]);
    assert.match(message.seen_in[0]!, /^gateway \(pid \d+\) -> worker \(pid \d+\)$/);
    assert.ok(message.trace_ids.every((id) => doc.traces.some((t) => t.trace_id === id)));
    // createOrder -> publish, reserveStock -> Inventory.reserve, cancelOrder -> Inventory.release ran as predicted.
    assert.equal(diff.summary.exercised_static_edges, 3);

    const gate = await runCyb(['diff', archeologyFile, dynamicFile, '--fail-on-invisible']);
    assert.equal(gate.code, 3);
    assert.match(gate.stdout, /Invisible dependencies: 3 \(2 dynamic-dispatch, 1 message\)/);
  });

  it('still writes a complete file when interrupted with Ctrl-C in the middle', async () => {
    const names = brokerNames();
    created.push(names);
    const dir = tempDir();
    const dynamicFile = path.join(dir, 'dynamic-traces.json');
    const run = startCyb(['trace', '-o', dynamicFile, '--', process.execPath, LAUNCHER, '--until-signal'], { env: { ...names, AMQP_URL } });
    await waitFor(() => /receiving OTLP on/.test(run.stderrText()), 'the receiver');
    // Let requests flow for a while, then interrupt as a user at the terminal would.
    await new Promise((resolve) => setTimeout(resolve, 3000));
    run.child.kill('SIGINT');
    const result = await run.done;
    assert.equal(result.code, 130, result.stderr);
    assert.match(result.stderr, /SIGINT received/);
    const doc = readJson<DynamicTraces>(dynamicFile);
    assertDynamicTraces(doc);
    // How many requests fit before the signal depends on the machine's load; at least one must.
    assert.ok(doc.traces.length >= 1, `traces: ${doc.traces.length}`);
    for (const trace of doc.traces) {
      // Every order the gateway accepted was processed and exported before the processes ended.
      assert.equal(trace.span_count, 5, `trace ${trace.trace_id}: ${trace.spans.map((s) => s.name).join(', ')}`);
    }
    assert.deepEqual(readdirSync(dir), ['dynamic-traces.json'], 'no temporary file is left behind');
  });
});

describe('cyb trace, the command', () => {
  it('exits with the command\'s own exit code, and 127 when it cannot be run', async () => {
    const dir = tempDir();
    const failing = await runCyb(['trace', '-o', path.join(dir, 'a.json'), '--', process.execPath, '-e', 'process.exit(7)']);
    assert.equal(failing.code, 7, failing.stderr);
    assert.ok(existsSync(path.join(dir, 'a.json')));
    const missing = await runCyb(['trace', '-o', path.join(dir, 'b.json'), '--', 'cyb-no-such-command-xyz']);
    assert.equal(missing.code, 127);
    assert.match(missing.stderr, /cannot run cyb-no-such-command-xyz: command not found/);
  });

  it('ends on time and writes its file while a sender trickles a request body one byte at a time', async () => {
    const dir = tempDir();
    const out = path.join(dir, 'slow.json');
    const started = Date.now();
    const run = startCyb(['trace', '--duration', '2s', '-o', out]);
    await waitFor(() => /receiving OTLP on (\S+)/.test(run.stderrText()), 'the receiver');
    const url = new URL(/receiving OTLP on (\S+)/.exec(run.stderrText())![1]!);
    const socket = net.connect(Number(url.port), url.hostname);
    let socketClosed = false;
    socket.on('error', () => {});
    socket.on('close', () => (socketClosed = true));
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    socket.write(`POST /v1/traces HTTP/1.1\r\nHost: ${url.host}\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{`);
    // Far below the declared length: left alone, this request would take some 14 hours.
    const drip = setInterval(() => {
      if (!socket.destroyed) socket.write(' ');
    }, 500);
    try {
      const result = await run.done;
      const elapsed = Date.now() - started;
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stderr, /duration elapsed/);
      // 2 s of duration, up to 3 s of grace for in-flight exports, 1 s close deadline, plus start-up.
      assert.ok(elapsed < 12_000, `cyb trace took ${elapsed} ms`);
      const doc = readJson<DynamicTraces>(out);
      assertDynamicTraces(doc);
      assert.equal(doc.traces.length, 0);
      await waitFor(() => socketClosed, 'the slow connection to be closed', 2000);
    } finally {
      clearInterval(drip);
      socket.destroy();
    }
  });

  it('receives OTLP JSON from any sender, refuses bad requests with 413/415/400 and keeps running', async () => {
    const dir = tempDir();
    const out = path.join(dir, 'received.json');
    const run = startCyb(['trace', '--duration', '3s', '--max-body', '4096', '-o', out]);
    await waitFor(() => /receiving OTLP on (\S+)/.test(run.stderrText()), 'the receiver');
    const url = /receiving OTLP on (\S+)/.exec(run.stderrText())![1]!;
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/v1\/traces$/);
    const post = (body: string, type = 'application/json'): Promise<Response> =>
      fetch(url, { method: 'POST', headers: { 'content-type': type }, body });
    // What an OpenTelemetry SDK in another language sends with the http/json protocol.
    const foreign = {
      resourceSpans: [{
        resource: { attributes: [{ key: 'service.name', value: { stringValue: 'billing-py' } }, { key: 'process.pid', value: { intValue: '4242' } }] },
        scopeSpans: [{
          scope: { name: 'opentelemetry.instrumentation.flask' },
          spans: [{
            traceId: '5b8efff798038103d269b633813fc60c', spanId: 'eee19b7ec3c1b174', parentSpanId: '', name: 'GET /invoices', kind: 2,
            startTimeUnixNano: '1737540000000000000', endTimeUnixNano: '1737540000001500000',
            attributes: [{ key: 'http.request.method', value: { stringValue: 'GET' } }, { key: 'http.route', value: { stringValue: '/invoices' } }],
            status: {},
          }],
        }],
      }],
    };
    assert.equal((await post('x'.repeat(5000))).status, 413);
    assert.equal((await post(JSON.stringify(foreign), 'application/x-protobuf')).status, 415);
    assert.equal((await post('{"resourceSpans": [')).status, 400);
    assert.equal((await post('{"something": "else"}')).status, 400);
    assert.equal((await fetch(url)).status, 405);
    assert.equal((await fetch(url.replace('/v1/traces', '/v1/metrics'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })).status, 404);
    const ok = await post(JSON.stringify(foreign));
    assert.equal(ok.status, 200);
    assert.deepEqual(await ok.json(), { partialSuccess: {} });

    const result = await run.done;
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, /duration elapsed/);
    const doc = readJson<DynamicTraces>(out);
    assertDynamicTraces(doc);
    assert.equal(doc.traces.length, 1);
    const [s] = doc.traces[0]!.spans;
    assert.equal(s!.trace_id, '5b8efff798038103d269b633813fc60c');
    assert.equal(s!.kind, 'server');
    assert.equal(s!.duration_us, 1500);
    assert.equal(s!.metadata?.['service.name'], 'billing-py');
    assert.equal(doc.summary.otlp_rejected, 6);
  });

  it('refuses bad options with exit 2 and one line', async () => {
    const bad = await runCyb(['trace', '--sample', '2', '--', 'true']);
    assert.equal(bad.code, 2);
    assert.equal(bad.stderr.trim().split('\n').length, 1, bad.stderr);
    assert.match(bad.stderr, /--sample expects a number from 0 to 1/);
    const format = await runCyb(['trace', '--format', 'xml', '--', 'true']);
    assert.equal(format.code, 2);
  });
});
