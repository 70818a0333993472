import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { DynamicSpan, DynamicTracesDocument } from '@cyb/core';
import type { RunRecord } from '../main.js';

/** A function as `cyb diff --json` names it. */
export interface DiffFunction {
  module: string;
  function: string;
  arity: number;
  file: string | null;
  line: number | null;
}

/** The parts of `cyb diff --json` the summary reads. */
export interface DiffDocument {
  summary: { invisible_edges: number; invisible_by_kind: Record<string, number>; static_edges: number; exercised_static_edges: number; unexercised_static_edges: number };
  invisible: { kind: string; from: DiffFunction; to: DiffFunction; count: number; trace_ids: string[]; via: string[] }[];
}

export interface DemoSummary {
  traces: number;
  spans: number;
  processes: string[];
  transports: string[];
  /** Traces of requests that went onto the bus, and how many of them span three or more processes. */
  busTraces: { total: number; threeOrMoreProcesses: number };
  invisible: { total: number; byKind: Record<string, number>; edges: { kind: string; from: string; to: string; via: string }[] };
  staticEdges: { total: number; ran: number };
  run: RunRecord;
}

function readJson<T>(file: string): T {
  return JSON.parse(readFileSync(file, 'utf8')) as T;
}

function attr(s: DynamicSpan, name: string): unknown {
  return s.metadata?.[name];
}

/** The transports seen in the spans, named for a reader. */
function transportsOf(spans: DynamicSpan[]): string[] {
  const seen = new Set<string>();
  for (const s of spans) {
    const system = attr(s, 'messaging.system');
    if (attr(s, 'http.request.method') !== undefined) seen.add(s.kind === 'client' ? 'HTTP client (fetch)' : `HTTP server (${String(attr(s, 'service.name')).includes('model') ? 'Koa' : 'Express'})`);
    if (system === 'rabbitmq') seen.add('RabbitMQ');
    if (system === 'kafka') seen.add('Kafka');
    if (system === 'redis') seen.add('Redis pub/sub');
    if (s.name.startsWith('vsm.bridge ')) seen.add('Redis VSM state bridge');
    if (attr(s, 'vsm.operation') !== undefined && attr(s, 'messaging.system') === undefined) seen.add('VSM dispatch');
  }
  const order = ['HTTP server (Express)', 'HTTP server (Koa)', 'HTTP client (fetch)', 'RabbitMQ', 'Kafka', 'Redis pub/sub', 'Redis VSM state bridge', 'VSM dispatch'];
  return [...seen].sort((a, b) => order.indexOf(a) - order.indexOf(b));
}

function shortName(fn: { module: string; function: string }): string {
  return `${path.posix.basename(fn.module)}:${fn.function}`;
}

/** Reads the files of one demo run (`run.json`, `dynamic-traces.json`, `diff.json`) into the summary. */
export function summarizeRun(outDir: string): DemoSummary {
  const run = readJson<RunRecord>(path.join(outDir, 'run.json'));
  const dynamic = readJson<DynamicTracesDocument>(path.join(outDir, 'dynamic-traces.json'));
  const diff = readJson<DiffDocument>(path.join(outDir, 'diff.json'));
  const processes = new Set<string>();
  const allSpans: DynamicSpan[] = [];
  const byTrace = new Map<string, DynamicSpan[]>();
  for (const t of dynamic.traces) {
    byTrace.set(t.trace_id, t.spans);
    for (const s of t.spans) {
      allSpans.push(s);
      processes.add(`${String(attr(s, 'service.name'))} (pid ${String(attr(s, 'process.pid'))})`);
    }
  }
  const bus = run.requests.filter((r) => r.status === 202 && r.traceId !== null);
  const wide = bus.filter((r) => {
    const spans = byTrace.get(r.traceId!) ?? [];
    return new Set(spans.map((s) => attr(s, 'process.pid'))).size >= 3;
  });
  return {
    traces: dynamic.summary.trace_count,
    spans: dynamic.summary.total_spans,
    processes: [...processes].sort(),
    transports: transportsOf(allSpans),
    busTraces: { total: bus.length, threeOrMoreProcesses: wide.length },
    invisible: {
      total: diff.summary.invisible_edges,
      byKind: Object.fromEntries(Object.entries(diff.summary.invisible_by_kind).filter(([, n]) => n > 0)),
      edges: diff.invisible.map((e) => ({ kind: e.kind, from: shortName(e.from), to: shortName(e.to), via: e.via[0] ?? '' })),
    },
    staticEdges: { total: diff.summary.static_edges, ran: diff.summary.exercised_static_edges },
    run,
  };
}

/** The short summary `npm run demo` ends with. */
export function formatSummary(summary: DemoSummary, outDir: string, seconds: Record<string, number>): string {
  const { run } = summary;
  const lines: string[] = [];
  const rel = path.relative(process.cwd(), outDir) || '.';
  const wrong = run.requests.filter((r) => !r.ok).length;
  const brokerLine = (['amqp', 'kafka', 'redis'] as const)
    .map((k) => `${run.brokers[k].broker} ${run.brokers[k].mode === 'stand-in' ? 'STAND-IN' : run.brokers[k].mode === 'test-broker' ? 'test broker' : 'real'}`)
    .join(', ');
  lines.push('', 'Summary');
  lines.push(`  run time     ${Object.entries(seconds).map(([k, v]) => `${k} ${v.toFixed(1)} s`).join(', ')}`);
  lines.push(`  brokers      ${brokerLine}`);
  lines.push(`  traffic      ${run.requests.length} requests (seed ${run.seed}), ${wrong === 0 ? 'all answered as expected' : `${wrong} answered unexpectedly`}; ` +
    `${run.events.received}/${run.events.expected} events streamed back; ${run.deadLetters.found}/${run.deadLetters.expected} dead-lettered`);
  lines.push(`  traces       ${summary.traces} (${summary.busTraces.threeOrMoreProcesses} of the ${summary.busTraces.total} requests put on the bus span 3+ processes)`);
  lines.push(`  spans        ${summary.spans}`);
  lines.push(`  processes    ${summary.processes.length}: ${summary.processes.map((p) => p.replace(/ \(pid \d+\)$/, '')).join(', ')}`);
  const standins = (['amqp', 'kafka', 'redis'] as const).filter((k) => run.brokers[k].mode === 'stand-in').map((k) => run.brokers[k].broker);
  const marked = summary.transports.map((t) => (standins.some((b) => t.startsWith(b)) ? `${t} (stand-in)` : t));
  lines.push(`  transports   ${marked.join(', ')}`);
  lines.push(`  invisible    ${summary.invisible.total} dependencies the static call graph does not show (${Object.entries(summary.invisible.byKind).map(([k, n]) => `${n} ${k}`).join(', ')})`);
  for (const e of summary.invisible.edges) lines.push(`    ${e.kind.padEnd(16)} ${e.from} -> ${e.to}${e.via ? `  [${e.via}]` : ''}`);
  lines.push(`  static graph ${summary.staticEdges.total} call edges in apps/demo; ${summary.staticEdges.ran} seen running (a call shows only when both ends carry a located span)`);
  lines.push(`  output       ${rel}/: dynamic-traces.json, archeology-results.json, diff.json, diff.txt, report.html, run.json`);
  lines.push(`  open         ${path.join(rel, 'report.html')}`);
  if (standins.length > 0) {
    lines.push('', `Note: ${standins.join(', ')} could not be reached, so this run used in-process stand-ins for ${standins.length === 1 ? 'it' : 'them'}: ` +
      'the same client libraries and tracing wrappers, with a toy broker inside the launcher behind them. ' +
      'Start the real ones (see tools/services.sh) or set AMQP_URL, KAFKA_BROKERS, REDIS_URL to see the demo on real brokers.');
  }
  return `${lines.join('\n')}\n`;
}
