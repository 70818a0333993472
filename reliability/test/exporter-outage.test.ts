// The OTLP endpoint goes down in the middle of a stream of spans and comes back on the same port.
// (The flood into the default collector and a hung endpoint are @cyb/core's own reliability tests.)
// The application must never wait for the exporter, its queue must stay bounded, and the books
// must balance exactly: every span produced is exported or counted as dropped.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { describe, it } from 'node:test';
import { OtlpHttpExporter, currentSpan, fromOtlpJson, span } from '@cyb/core';
import { sleep } from './helpers.js';

const MAX_QUEUE = 1000;
const MAX_BATCH = 100;
const PER_TICK = 50;

/** An OTLP receiver that counts span ids, and can be taken down and brought back on its port. */
class Endpoint {
  readonly received = new Map<string, number>();
  port = 0;
  #server: http.Server | undefined;

  async up(): Promise<void> {
    const server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        for (const s of fromOtlpJson(Buffer.concat(chunks))) this.received.set(s.spanId, (this.received.get(s.spanId) ?? 0) + 1);
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    this.#server = server;
    await new Promise<void>((resolve) => server.listen(this.port, '127.0.0.1', resolve));
    this.port = (server.address() as AddressInfo).port;
  }

  /** Gone at once: the listener closes and every connection is cut, requests in flight included. */
  async down(): Promise<void> {
    const server = this.#server!;
    this.#server = undefined;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeAllConnections();
    await closed;
  }
}

describe('OTLP exporter whose endpoint goes down mid-stream and comes back', () => {
  it('never holds the application up, stays bounded, exports again after the outage, and counts every span', async (t) => {
    const endpoint = new Endpoint();
    await endpoint.up();
    const exporter = new OtlpHttpExporter({
      url: `http://127.0.0.1:${endpoint.port}/v1/traces`,
      maxQueue: MAX_QUEUE, maxBatch: MAX_BATCH, intervalMs: 20, timeoutMs: 300, retries: 2,
    }).start();
    const produced = new Set<string>();
    let maxQueued = 0;
    let slowestTickMs = 0;
    const delay = monitorEventLoopDelay({ resolution: 5 });
    delay.enable();

    /** The application: PER_TICK spans every 5 ms for `ms`, never waiting on the exporter. */
    const produce = async (ms: number): Promise<void> => {
      const until = Date.now() + ms;
      while (Date.now() < until) {
        const t0 = performance.now();
        for (let i = 0; i < PER_TICK; i++) span('work', {}, () => void produced.add(currentSpan()!.spanContext().spanId));
        slowestTickMs = Math.max(slowestTickMs, performance.now() - t0);
        maxQueued = Math.max(maxQueued, exporter.stats().queued);
        await sleep(5);
      }
    };

    await produce(400);
    const beforeOutage = exporter.stats();
    await endpoint.down();
    await produce(800);
    const duringOutage = exporter.stats();
    await endpoint.up();
    await produce(600);
    await exporter.shutdown();
    await endpoint.down();
    delay.disable();
    const stats = exporter.stats();

    t.diagnostic(`produced ${produced.size}, exported ${stats.exported}, dropped ${stats.droppedQueueFull} (queue full) + ${stats.droppedFailed} (failed), ` +
      `received ${endpoint.received.size}, failed requests ${stats.failedRequests}, retries ${stats.retries}, queue peak ${maxQueued}, ` +
      `slowest tick ${slowestTickMs.toFixed(1)} ms, event loop delay max ${(delay.max / 1e6).toFixed(1)} ms`);
    // The books balance: every span produced was exported or dropped, none twice, none still queued.
    assert.equal(stats.queued, 0);
    assert.equal(stats.exported + stats.droppedQueueFull + stats.droppedFailed, produced.size);
    // The outage cost spans, counted; export resumed once the endpoint was back.
    assert.ok(beforeOutage.exported > 0, 'exported before the outage');
    assert.ok(duringOutage.failedRequests > beforeOutage.failedRequests, 'requests failed while it was down');
    assert.ok(stats.droppedFailed + stats.droppedQueueFull > 0, 'the outage dropped spans');
    assert.ok(stats.exported > duringOutage.exported, 'exported again after the outage');
    // What the endpoint holds is what was counted as exported, give or take the one batch that was
    // on the wire when the connections were cut (received, but its answer never came back).
    const receivedIds = [...endpoint.received.keys()];
    for (const id of receivedIds) assert.ok(produced.has(id), 'the endpoint got only spans the application made');
    assert.ok(receivedIds.length >= stats.exported, `received ${receivedIds.length} >= exported ${stats.exported}`);
    assert.ok(receivedIds.length - stats.exported <= MAX_BATCH, `received ${receivedIds.length}, exported ${stats.exported}`);
    // Bounded: the queue never grew past its limit, and making spans never waited on the network.
    assert.ok(maxQueued <= MAX_QUEUE, `queue reached ${maxQueued}`);
    assert.ok(slowestTickMs < 250, `the slowest batch of ${PER_TICK} spans took ${slowestTickMs.toFixed(1)} ms`);
    assert.ok(delay.max / 1e6 < 500, `event loop delay peaked at ${(delay.max / 1e6).toFixed(0)} ms`);
  });
});
