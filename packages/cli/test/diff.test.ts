import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fnId, runCyb, tempDir } from './helpers.js';
import { sampleArcheology, sampleDynamicTraces } from './sample-documents.js';

interface DiffJson {
  summary: Record<string, unknown>;
  invisible: { from: { module: string; function: string; arity: number; file: string | null; line: number | null }; to: { module: string; function: string; arity: number }; kind: string; count: number; trace_ids: string[]; via: string[]; seen_in: string[] }[];
  unexercised: { from: { module: string; function: string; arity: number }; to: { module: string; function: string; arity: number }; caller_ran: boolean; callee_ran: boolean }[];
}

describe('cyb diff', () => {
  let dir: string;
  before(() => {
    dir = tempDir();
    const dynamic = sampleDynamicTraces();
    // A job in the worker that calls record() directly, and validate() through the unspanned parse().
    const job = dynamic.traces[2]!;
    const base = job.spans[0]!;
    job.spans.push(
      { ...base, span_id: '00000000000000d1', parent_span_id: base.span_id, name: 'record', module: 'src/audit', function: 'record', arity: 1, metadata: { ...base.metadata } },
      { ...base, span_id: '00000000000000d2', parent_span_id: base.span_id, name: 'validate', module: 'src/worker', function: 'validate', arity: 1, metadata: { ...base.metadata } },
    );
    job.span_count = job.spans.length;
    dynamic.summary.total_spans += 2;
    const archeology = sampleArcheology();
    archeology.edges.push({ from: { module: 'src/worker', function: 'parse', arity: 1 }, to: { module: 'src/worker', function: 'validate', arity: 1 } });
    writeFileSync(path.join(dir, 'dynamic.json'), JSON.stringify(dynamic));
    writeFileSync(path.join(dir, 'archeology.json'), JSON.stringify(archeology));
  });

  it('classifies each invisible edge and reports where, how often and example traces', async () => {
    const result = await runCyb(['diff', 'archeology.json', 'dynamic.json', '--json'], { cwd: dir });
    assert.equal(result.code, 0, result.stderr);
    const diff = JSON.parse(result.stdout) as DiffJson;
    assert.deepEqual(diff.invisible.map((e) => `${e.kind} ${fnId(e.from)} -> ${fnId(e.to)} x${e.count}`), [
      'dynamic-dispatch src/worker:handleDelivery/1 -> src/handlers:reserveStock/1 x2',
      'message src/gateway:createOrder/2 -> src/worker:handleDelivery/1 x1',
      'http web/src/checkout:checkout/1 -> src/gateway:createOrder/2 x1',
      'call src/worker:handleDelivery/1 -> src/audit:record/1 x1',
    ]);
    const [dispatch, message, http] = diff.invisible;
    assert.deepEqual(dispatch!.via, ['vsm.operation=reserve']);
    assert.deepEqual(dispatch!.seen_in, ['worker (pid 303) -> worker (pid 303)']);
    assert.equal(dispatch!.trace_ids.length, 2);
    // Located from the static graph where it knows the function.
    assert.deepEqual([dispatch!.from.file, dispatch!.from.line], ['src/worker.ts', 10]);
    assert.deepEqual(message!.via, ['rabbitmq orders (orders.reserve)']);
    assert.deepEqual(message!.seen_in, ['gateway (pid 202) -> worker (pid 303)']);
    assert.deepEqual(http!.via, ['POST /orders']);
    assert.deepEqual(http!.seen_in, ['web (pid 101) -> gateway (pid 202)']);
    // handleDelivery -> validate ran through parse(), which the static graph has: not invisible.
    assert.ok(!diff.invisible.some((e) => e.to.function === 'validate'));
    assert.deepEqual(diff.unexercised.map((e) => `${fnId(e.from)} -> ${fnId(e.to)} ${e.caller_ran}/${e.callee_ran}`), [
      'src/worker:handleDelivery/1 -> src/worker:parse/1 true/false',
      'src/worker:parse/1 -> src/worker:validate/1 false/true',
    ]);
    assert.deepEqual(diff.summary.invisible_by_kind, { 'dynamic-dispatch': 1, message: 1, http: 1, call: 1 });
    assert.equal(diff.summary.exercised_static_edges, 1);
  });

  it('prints tables, and gates CI with --fail-on-invisible', async () => {
    const table = await runCyb(['diff', 'archeology.json', 'dynamic.json'], { cwd: dir });
    assert.equal(table.code, 0);
    assert.match(table.stdout, /Invisible dependencies: 4 \(1 dynamic-dispatch, 1 message, 1 http, 1 call\)/);
    assert.match(table.stdout, /│ dynamic-dispatch │ src\/worker:handleDelivery\/1/);
    assert.match(table.stdout, /Static edges never exercised: 2 of 3/);
    assert.ok(!table.stdout.includes('\u001b['), 'no colour codes in a pipe');
    const gate = await runCyb(['diff', 'archeology.json', 'dynamic.json', '--fail-on-invisible'], { cwd: dir });
    assert.equal(gate.code, 3);
    // A recording with no invisible edge passes the gate.
    const clean = sampleDynamicTraces();
    clean.traces = [clean.traces[1]!];
    writeFileSync(path.join(dir, 'clean.json'), JSON.stringify(clean));
    const pass = await runCyb(['diff', 'archeology.json', 'clean.json', '--fail-on-invisible'], { cwd: dir });
    assert.equal(pass.code, 0, pass.stdout);
  });

  it('names an unreadable or invalid input and its first schema error, with exit 1', async () => {
    const missing = await runCyb(['diff', 'nope.json', 'dynamic.json'], { cwd: dir });
    assert.equal(missing.code, 1);
    assert.equal(missing.stderr, 'cyb: nope.json: cannot read (no such file)\n');
    writeFileSync(path.join(dir, 'bad-arch.json'), JSON.stringify({ summary: { entry_point_count: 1, trace_count: 'one' }, entry_points: [], traces: [] }));
    const invalid = await runCyb(['diff', 'bad-arch.json', 'dynamic.json'], { cwd: dir });
    assert.equal(invalid.code, 1);
    assert.equal(invalid.stderr, 'cyb: bad-arch.json: does not match the archeology-results.json schema: /summary/trace_count must be integer\n');
    // The files swapped: each is checked against its own schema.
    const swapped = await runCyb(['diff', 'dynamic.json', 'archeology.json'], { cwd: dir });
    assert.equal(swapped.code, 1);
    assert.match(swapped.stderr, /^cyb: dynamic\.json: does not match the archeology-results\.json schema: \(root\) must have required property 'entry_points'\n$/);
  });

  it('exits 2 on a usage error, with one line', async () => {
    const result = await runCyb(['diff', 'archeology.json'], { cwd: dir });
    assert.equal(result.code, 2);
    assert.equal(result.stderr, "cyb: missing required argument 'dynamic.json'\n");
  });
});
