import { randomBytes } from 'node:crypto';
import { rename, unlink, writeFile } from 'node:fs/promises';
import type { SpanRecord } from './CybSpan.js';
import { shallowCopy } from './shallow-copy.js';
import { Collector, type CollectedTrace, type CollectorStats } from './Collector.js';

/** One span as `dynamic-traces.json` writes it. */
export interface DynamicSpan {
  trace_id: string;
  span_id: string;
  parent_span_id: string | null;
  name: string;
  kind: string;
  module: string | null;
  function: string | null;
  arity: number | null;
  file: string | null;
  line: number | null;
  timestamp: number;
  duration_us: number;
  status: 'unset' | 'ok' | 'error';
  metadata: Record<string, unknown>;
  links?: { trace_id: string; span_id: string }[];
  events?: { name: string; timestamp: number; attributes?: Record<string, unknown> }[];
}

export interface DynamicEntryPoint {
  type: string;
  module: string | null;
  function: string | null;
  arity: number | null;
  name: string;
}

export interface DynamicTrace {
  trace_id: string;
  entry_point: DynamicEntryPoint;
  spans: DynamicSpan[];
  span_count: number;
}

export interface DynamicTracesDocument {
  traces: DynamicTrace[];
  summary: {
    trace_count: number;
    total_spans: number;
    entry_points_covered: string[];
    dropped_spans: number;
    evicted_traces: number;
    sampled_out: number;
    processes: number;
    [extra: string]: unknown;
  };
}

export interface ToDynamicTracesOptions {
  /** Counters for the summary when `source` is a list of traces (a Collector gives its own). */
  stats?: Partial<CollectorStats>;
  /** Extra summary fields (exporter drops, duration...). */
  summary?: Record<string, unknown>;
}

const MESSAGING_TYPES: Record<string, string> = { rabbitmq: 'amqp', kafka: 'kafka', redis: 'redis' };

/** The entry point type of a trace, from its root span. */
function entryType(root: SpanRecord): string {
  const system = root.attributes['messaging.system'];
  if ((root.kind === 'consumer' || root.kind === 'producer') && typeof system === 'string') return MESSAGING_TYPES[system] ?? system;
  if (root.kind === 'server') return 'http';
  if (typeof root.attributes['vsm.system'] === 'string') return 'vsm';
  return root.kind === 'client' ? 'client' : 'function';
}

function toDynamicSpan(s: SpanRecord): DynamicSpan {
  const metadata: Record<string, unknown> = shallowCopy(s.attributes);
  for (const [k, v] of Object.entries(s.resource ?? {})) if (!(k in metadata)) metadata[k] = v;
  if (s.status.code === 'error' && s.status.message !== undefined) metadata['error.message'] = s.status.message;
  const out: DynamicSpan = {
    trace_id: s.traceId,
    span_id: s.spanId,
    parent_span_id: s.parentSpanId ?? null,
    name: s.name,
    kind: s.kind,
    module: s.module ?? null,
    function: s.function ?? null,
    arity: s.arity ?? null,
    file: s.file ?? null,
    line: s.line ?? null,
    timestamp: s.timestamp,
    duration_us: s.durationUs,
    status: s.status.code,
    metadata,
  };
  if (s.links.length > 0) out.links = s.links.map((l) => ({ trace_id: l.traceId, span_id: l.spanId }));
  if (s.events.length > 0) {
    out.events = s.events.map((e) => (e.attributes ? { name: e.name, timestamp: e.timestamp, attributes: { ...e.attributes } } : { name: e.name, timestamp: e.timestamp }));
  }
  return out;
}

/**
 * The `dynamic-traces.json` document for a collector or a list of traces.
 *
 * @example
 * const doc = toDynamicTraces(collector);
 */
export function toDynamicTraces(source: Collector | readonly CollectedTrace[], options: ToDynamicTracesOptions = {}): DynamicTracesDocument {
  const traces = source instanceof Collector ? source.traces() : source;
  const stats = source instanceof Collector ? source.stats() : options.stats ?? {};
  const covered = new Set<string>();
  const processes = new Set<string>();
  let total = 0;
  const out: DynamicTrace[] = [];
  for (const t of traces) {
    const spans = [...t.spans].sort((a, b) => a.timestamp - b.timestamp);
    if (spans.length === 0) continue;
    const ids = new Set(spans.map((s) => s.spanId));
    const root = spans.find((s) => s.parentSpanId === undefined) ?? spans.find((s) => !ids.has(s.parentSpanId as string)) ?? (spans[0] as SpanRecord);
    const located = root.module !== undefined ? root : spans.find((s) => s.module !== undefined);
    const type = entryType(root);
    covered.add(type);
    for (const s of spans) processes.add(`${String(s.resource?.['service.name'])}/${String(s.resource?.['process.pid'])}`);
    total += spans.length;
    out.push({
      trace_id: t.traceId,
      entry_point: {
        type,
        module: located?.module ?? null,
        function: located?.function ?? null,
        arity: located?.arity ?? null,
        name: root.name,
      },
      spans: spans.map(toDynamicSpan),
      span_count: spans.length,
    });
  }
  return {
    traces: out,
    summary: {
      trace_count: out.length,
      total_spans: total,
      entry_points_covered: [...covered].sort(),
      dropped_spans: stats.droppedSpans ?? 0,
      evicted_traces: stats.evictedTraces ?? 0,
      sampled_out: stats.sampledOut ?? 0,
      processes: processes.size,
      ...options.summary,
    },
  };
}

/**
 * Writes a JSON document atomically: a temporary file beside `path`, then a rename, so a reader sees
 * the old file or the complete new one, never part of one.
 */
export async function writeJsonAtomic(path: string, document: unknown): Promise<void> {
  const body = JSON.stringify(document, null, 2) + '\n';
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await writeFile(tmp, body, { flush: true });
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
}

/**
 * Writes `dynamic-traces.json` for a collector or list of traces atomically and returns the document.
 *
 * @example
 * await writeDynamicTraces('dynamic-traces.json', collector);
 */
export async function writeDynamicTraces(
  path: string,
  source: Collector | readonly CollectedTrace[],
  options: ToDynamicTracesOptions = {},
): Promise<DynamicTracesDocument> {
  const document = toDynamicTraces(source, options);
  await writeJsonAtomic(path, document);
  return document;
}
