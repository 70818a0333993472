import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type Browser } from 'playwright-core';
import { assertDynamicTraces, runCyb, tempDir } from './helpers.js';
import { sampleArcheology, sampleDynamicTraces } from './sample-documents.js';

// Debian's chromium package; the test installs nothing and fetches nothing.
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];

describe('cyb report', () => {
  let browser: Browser;
  let dir: string;
  const dynamic = sampleDynamicTraces();

  before(async () => {
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    dir = tempDir();
    assertDynamicTraces(dynamic);
    writeFileSync(path.join(dir, 'dynamic-traces.json'), JSON.stringify(dynamic));
    writeFileSync(path.join(dir, 'archeology-results.json'), JSON.stringify(sampleArcheology()));
  });

  after(async () => {
    await browser?.close();
  });

  it('renders every trace with its span count, a lane per process, hops and invisible edges, offline and without errors', async () => {
    const result = await runCyb(['report', 'dynamic-traces.json', '--static', 'archeology-results.json', '-o', 'report.html'], { cwd: dir });
    assert.equal(result.code, 0, result.stderr);
    const page = await browser.newPage();
    const problems: string[] = [];
    const requests: string[] = [];
    page.on('console', (msg) => {
      if (msg.type() === 'error' || msg.type() === 'warning') problems.push(`${msg.type()}: ${msg.text()}`);
    });
    page.on('pageerror', (error) => problems.push(`pageerror: ${error.message}`));
    page.on('request', (request) => requests.push(request.url()));
    const url = pathToFileURL(path.join(dir, 'report.html')).href;
    await page.goto(url);

    const rows = page.locator('tr.trace-row');
    assert.equal(await rows.count(), dynamic.traces.length);
    for (const [i, trace] of dynamic.traces.entries()) {
      const row = rows.nth(i);
      assert.equal(await row.getAttribute('data-trace-id'), trace.trace_id);
      assert.equal((await row.locator('td.span-count').textContent())?.trim(), String(trace.span_count));
      await row.click();
      const figure = page.locator(`figure.waterfall[data-trace-id="${trace.trace_id}"]`);
      assert.ok(await figure.isVisible(), `waterfall of ${trace.trace_id} is shown`);
      assert.equal(await page.locator('figure.waterfall:visible').count(), 1);
      assert.equal(await figure.locator('rect.span-bar').count(), trace.span_count);
      const processes = new Set(trace.spans.map((s) => `${String(s.metadata?.['service.name'])} (pid ${String(s.metadata?.['process.pid'])})`));
      assert.deepEqual(new Set(await figure.locator('g.lane').evaluateAll((lanes) => lanes.map((l) => l.getAttribute('data-process')))), processes);
      const box = await figure.locator('rect.span-bar').first().boundingBox();
      assert.ok(box && box.width > 0 && box.height > 0, 'bars are drawn');
    }
    // Trace 0 crosses HTTP and RabbitMQ; its waterfall marks both hops.
    const first = page.locator(`figure.waterfall[data-trace-id="${dynamic.traces[0]!.trace_id}"]`);
    assert.equal(await first.locator('g.hop-http').count(), 1);
    assert.equal(await first.locator('g.hop-message').count(), 1);

    // The dependency graph: every function that ran, the invisible edges highlighted with their kind.
    assert.equal(await page.locator('g.dep-node').count(), 6);
    const invisible = await page.locator('g.dep-edge.invisible').evaluateAll((edges) => edges.map((e) => e.getAttribute('data-kind')).sort());
    assert.deepEqual(invisible, ['dynamic-dispatch', 'http', 'message']);
    assert.equal(await page.locator('g.dep-edge.visible').count(), 1);

    // The filter hides non-matching traces.
    await page.fill('#filter', dynamic.traces[1]!.trace_id.slice(-6));
    assert.equal(await page.locator('tr.trace-row:visible').count(), 1);

    assert.deepEqual(problems, []);
    assert.deepEqual(requests, [url], 'the page loads nothing but itself');
    await page.close();
  });

  it('renders an empty recording without errors', async () => {
    const empty = { traces: [], summary: { trace_count: 0, total_spans: 0, entry_points_covered: [], dropped_spans: 0, evicted_traces: 0, sampled_out: 0 } };
    writeFileSync(path.join(dir, 'empty.json'), JSON.stringify(empty));
    const result = await runCyb(['report', 'empty.json', '-o', 'empty.html'], { cwd: dir });
    assert.equal(result.code, 0, result.stderr);
    const page = await browser.newPage();
    const problems: string[] = [];
    page.on('pageerror', (error) => problems.push(error.message));
    page.on('console', (msg) => msg.type() === 'error' && problems.push(msg.text()));
    await page.goto(pathToFileURL(path.join(dir, 'empty.html')).href);
    assert.equal(await page.locator('tr.trace-row').count(), 0);
    assert.match((await page.locator('#waterfalls').textContent()) ?? '', /No traces were recorded/);
    assert.deepEqual(problems, []);
    await page.close();
  });

  it('names the file and the first schema error of an invalid input, with exit 1', async () => {
    writeFileSync(path.join(dir, 'broken.json'), '{"traces": [');
    const notJson = await runCyb(['report', 'broken.json'], { cwd: dir });
    assert.equal(notJson.code, 1);
    assert.match(notJson.stderr, /^cyb: broken\.json: not JSON/);
    writeFileSync(path.join(dir, 'wrong.json'), JSON.stringify({ traces: [{ trace_id: 'nope' }], summary: {} }));
    const wrong = await runCyb(['report', 'wrong.json'], { cwd: dir });
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /^cyb: wrong\.json: does not match the dynamic-traces\.json schema: \/traces\/0 must have required property 'entry_point'\n$/);
  });
});
