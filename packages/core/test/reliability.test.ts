import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { OtlpHttpExporter, span } from '@cyb/core';

const run = promisify(execFile);

function listen(server: Server): Promise<string> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/traces`)));
}

describe('under flood', () => {
  it('keeps RSS growth under 100 MB and the counters exact for 1,000,000 spans', async () => {
    const script = fileURLToPath(new URL('../../test/fixtures/flood/flood.mjs', import.meta.url));
    const { stdout } = await run(process.execPath, ['--expose-gc', script], { maxBuffer: 1 << 20 });
    const { growthMB, stats } = JSON.parse(stdout) as { growthMB: number; stats: Record<string, number> };
    // Every span is a root (a new trace) or a child of nothing active, so 1,000,000 traces arrive.
    assert.equal(stats.traces, 1000);
    assert.equal(stats.spans, 1000);
    assert.equal(stats.evictedTraces, 999_000);
    assert.equal(stats.droppedSpans, 0);
    assert.ok(growthMB < 100, `RSS grew ${growthMB.toFixed(1)} MB`);
  });
});

describe('OTLP exporter against a slow endpoint', () => {
  it('never blocks the application and drops with counts once its queue is full', async () => {
    const hung: import('node:http').ServerResponse[] = [];
    const server = createServer((_req, res) => void hung.push(res)); // accepts, never answers
    const url = await listen(server);
    const exporter = new OtlpHttpExporter({ url, maxQueue: 100, maxBatch: 50, timeoutMs: 200, retries: 1, intervalMs: 20 }).start();
    let made = 0;
    for (let i = 0; i < 5000; i++) made += span('busy', {}, () => 1);
    assert.equal(made, 5000, 'every application call ran');
    assert.ok(exporter.stats().queued <= 100);
    await exporter.shutdown();
    for (const res of hung) res.destroy();
    server.close();
    const stats = exporter.stats();
    assert.equal(stats.exported, 0);
    assert.equal(stats.droppedQueueFull + stats.droppedFailed, 5000);
    assert.ok(stats.droppedQueueFull >= 4800);
  });
});
