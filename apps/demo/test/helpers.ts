import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DynamicSpan, DynamicTracesDocument } from '@cyb/core';
import type { RunRecord } from '../src/main.js';
import type { DiffDocument } from '../src/lib/summary.js';

const RUN_DEMO = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'src', 'run-demo.js');
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');

export interface DemoResult {
  code: number;
  stdout: string;
  stderr: string;
  seconds: number;
  out: string;
  run: RunRecord;
  dynamic: DynamicTracesDocument;
  diff: DiffDocument;
}

/** Runs `run-demo.js` as `npm run demo` does (from the repo root), into a fresh folder. */
export async function runDemo(env: NodeJS.ProcessEnv, args: string[] = []): Promise<DemoResult> {
  const out = mkdtempSync(path.join(tmpdir(), 'cyb-demo-test-'));
  const started = performance.now();
  const { code, stdout, stderr } = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, [RUN_DEMO, '--out', out, ...args], { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.once('close', (c) => resolve({ code: c ?? 1, stdout, stderr }));
  });
  const seconds = (performance.now() - started) / 1000;
  const read = <T>(name: string): T => JSON.parse(readFileSync(path.join(out, name), 'utf8')) as T;
  return { code, stdout, stderr, seconds, out, run: read<RunRecord>('run.json'), dynamic: read<DynamicTracesDocument>('dynamic-traces.json'), diff: read<DiffDocument>('diff.json') };
}

export function spansOf(result: DemoResult, traceId: string | null): DynamicSpan[] {
  assert.ok(traceId, 'the gateway answered without an x-trace-id');
  const trace = result.dynamic.traces.find((t) => t.trace_id === traceId);
  assert.ok(trace, `trace ${traceId} is not in dynamic-traces.json`);
  return trace.spans;
}

export function processesOf(spans: DynamicSpan[]): Set<string> {
  return new Set(spans.map((s) => `${String(s.metadata['service.name'])}/${String(s.metadata['process.pid'])}`));
}

/**
 * One root, the gateway's SERVER span, and every other span's parent in the same trace: walking up
 * from any span reaches the root.
 */
export function assertUnbrokenChain(spans: DynamicSpan[], label: string): void {
  const byId = new Map(spans.map((s) => [s.span_id, s]));
  const roots = spans.filter((s) => s.parent_span_id === null);
  assert.equal(roots.length, 1, `${label}: ${roots.length} root spans (${roots.map((r) => r.name).join(', ')})`);
  const root = roots[0]!;
  assert.equal(root.kind, 'server', `${label}: the root is ${root.name}, not the gateway's SERVER span`);
  assert.equal(root.metadata['service.name'], 'demo-gateway', `${label}: the root is in ${String(root.metadata['service.name'])}`);
  for (const s of spans) {
    let at: DynamicSpan | undefined = s;
    for (let hops = 0; at && at !== root; hops++) {
      assert.ok(hops <= spans.length, `${label}: a parent cycle at ${s.name}`);
      const parent: string | null = at.parent_span_id;
      assert.ok(parent !== null && byId.has(parent), `${label}: ${at.name} (${String(at.metadata['service.name'])}) has parent ${String(parent)}, not in the trace`);
      at = byId.get(parent);
    }
  }
}

export function errorSpans(spans: DynamicSpan[]): DynamicSpan[] {
  return spans.filter((s) => s.status === 'error');
}

/** The invisible dependencies the demo's traffic must produce: `kind caller -> callee`, functions only. */
export const EXPECTED_INVISIBLE = [
  'dynamic-dispatch Control.control -> continuousAudit',
  'dynamic-dispatch Control.control -> sporadicAudit',
  'message generate -> Operations.operation',
  'message generate -> Operations.status',
  'message generate -> Coordinator.coordinate',
  'message generate -> Coordinator.rebalance',
  'message generate -> Control.control',
  'message generate -> Control.report',
  'message generate -> Intelligence.intelligence',
  'message generate -> Intelligence.forecast',
  'message generate -> Policy.policy',
  'message generate -> Policy.identity',
  'message Operations.operation -> Coordinator.coordinate',
  'message Operations.status -> Control.report',
  'message Coordinator.coordinate -> Control.control',
  'message Control.control -> Intelligence.intelligence',
  'message Intelligence.intelligence -> Policy.policy',
  'message Intelligence.intelligence -> onInsight',
  'message Intelligence.forecast -> onInsight',
  'message onInsight -> onEvent',
  'http generate -> getModel',
  'http generate -> moderate',
  'http health -> health',
].sort();

export function invisibleEdges(diff: DiffDocument): string[] {
  return diff.invisible.map((e) => `${e.kind} ${e.from.function} -> ${e.to.function}`).sort();
}

/** The checks both runs share: traces, error paths, the diff. */
export function assertDemoTraces(result: DemoResult): void {
  const { run } = result;
  assert.ok(run.requests.length >= 20, `only ${run.requests.length} requests were sent`);
  for (const r of run.requests) {
    assert.ok(r.ok, `${r.label}: ${r.method} ${r.path} answered ${r.status || r.error}, expected ${r.expectStatus}`);
    const spans = spansOf(result, r.traceId);
    assertUnbrokenChain(spans, r.label);
    if (r.status === 202) {
      const processes = processesOf(spans);
      assert.ok(processes.size >= 3, `${r.label}: the trace spans ${processes.size} processes (${[...processes].join(', ')})`);
    }
  }
  assertUnbrokenChain(spansOf(result, run.events.streamTraceId), 'event stream');
  assert.deepEqual(run.events.missing, [], 'insights that never came back over the event stream');
  assert.equal(run.deadLetters.found, run.deadLetters.expected);
}

export function assertErrorPaths(result: DemoResult): void {
  const byKind = (kind: string): RunRecord['requests'] => result.run.requests.filter((r) => r.kind === kind);
  const namespace = result.run.namespace;

  const [unknown] = byKind('unknown-operation');
  assert.ok(unknown);
  const unknownSpans = spansOf(result, unknown.traceId);
  const dispatch = errorSpans(unknownSpans).find((s) => s.name === 'vsm.s2 teleport');
  assert.ok(dispatch, 'no error span for the unknown operation');
  assert.equal(dispatch.metadata['error.type'], 'UnknownOperationError');
  assert.ok(unknownSpans.some((s) => s.kind === 'producer' && s.name === `publish ${namespace}.dead-letter`), 'the unknown operation was not dead-lettered');

  const [thrown] = byKind('handler-throws');
  assert.ok(thrown);
  const thrownSpans = spansOf(result, thrown.traceId);
  const control = errorSpans(thrownSpans).find((s) => s.name === 'vsm.s3 control');
  assert.ok(control, 'no error span for the handler that throws');
  assert.match(String(control.metadata['error.message']), /exceed the budget/);
  assert.equal(control.function, 'Control.control');
  assert.ok(thrownSpans.some((s) => s.name === `publish ${namespace}.dead-letter`), 'the failed message was not dead-lettered');

  for (const r of byKind('client-error')) {
    const spans = spansOf(result, r.traceId);
    const server = spans.find((s) => s.parent_span_id === null)!;
    assert.equal(server.metadata['http.response.status_code'], r.expectStatus, `${r.label}: status on the SERVER span`);
    const handler = errorSpans(spans).find((s) => s.name.startsWith('handler ') && s.metadata['service.name'] === 'demo-gateway');
    assert.ok(handler, `${r.label}: no error span on the gateway's handler`);
  }

  const [failed] = byKind('server-error');
  assert.ok(failed);
  const failedSpans = spansOf(result, failed.traceId);
  const gatewayServer = failedSpans.find((s) => s.parent_span_id === null)!;
  assert.equal(gatewayServer.status, 'error');
  assert.equal(gatewayServer.metadata['http.response.status_code'], 502);
  const modelServer = failedSpans.find((s) => s.kind === 'server' && s.metadata['service.name'] === 'demo-model-service');
  assert.ok(modelServer, 'the model service is not in the 5xx trace');
  assert.equal(modelServer.status, 'error');
  assert.equal(modelServer.metadata['http.response.status_code'], 500);
}

export function assertDiff(result: DemoResult): void {
  assert.deepEqual(invisibleEdges(result.diff), EXPECTED_INVISIBLE);
  assert.equal(result.diff.summary.invisible_by_kind.call, 0, 'a direct call was reported as invisible');
  // The two located steps (S1's draftText, S3's checkBudget) are calls the static graph has, and ran.
  assert.equal(result.diff.summary.exercised_static_edges, 2);
  const via = (from: string, to: string): string[] => result.diff.invisible.find((e) => e.from.function === from && e.to.function === to)?.via ?? [];
  const ns = result.run.namespace;
  assert.ok(via('generate', 'Operations.operation').some((v) => v.startsWith(`rabbitmq ${ns}.vsm (s1.operation)`)));
  assert.ok(via('Intelligence.intelligence', 'onInsight').every((v) => v.startsWith(`kafka ${ns}.insights`)));
  assert.deepEqual(via('onInsight', 'onEvent'), [`redis ${ns}.events`]);
  assert.deepEqual(via('Control.control', 'sporadicAudit'), ['vsm.operation=sporadic']);
  // Runtime locations and the static graph use one key: paths from apps/demo, lines at the declarations.
  for (const e of result.diff.invisible) {
    for (const fn of [e.from, e.to]) {
      assert.ok(fn.file && fn.line, `${fn.module}:${fn.function} has no location`);
      const line = readFileSync(path.join(REPO_ROOT, 'apps', 'demo', fn.file), 'utf8').split('\n')[fn.line - 1] ?? '';
      const name = fn.function.split('.').pop()!;
      assert.ok(line.includes(name), `${fn.file}:${fn.line} is not where ${fn.function} is declared: ${line.trim()}`);
    }
  }
}
