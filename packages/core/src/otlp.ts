import http from 'node:http';
import https from 'node:https';
import { context } from '@opentelemetry/api';
import { suppressTracing } from '@opentelemetry/core';
import type { EventRecord, LinkRecord, SpanKind, SpanRecord, SpanStatusRecord } from './CybSpan.js';
import { onSpanEnd } from './internal/channel.js';
import { debug } from './internal/debug.js';
import { shallowCopy } from './shallow-copy.js';

// OTLP/JSON (opentelemetry-proto, protobuf JSON mapping): ids are hex, 64-bit integers are strings.
const KIND_TO_OTLP: Record<SpanKind, number> = { internal: 1, server: 2, client: 3, producer: 4, consumer: 5 };
const OTLP_TO_KIND: Record<number, SpanKind> = { 0: 'internal', 1: 'internal', 2: 'server', 3: 'client', 4: 'producer', 5: 'consumer' };
const STATUS_TO_OTLP = { unset: 0, ok: 1, error: 2 } as const;

type AnyValue =
  | { stringValue: string }
  | { boolValue: boolean }
  | { intValue: string }
  | { doubleValue: number }
  | { arrayValue: { values: AnyValue[] } };

interface KeyValue {
  key: string;
  value: AnyValue;
}

function anyValue(v: unknown): AnyValue | undefined {
  switch (typeof v) {
    case 'string':
      return { stringValue: v };
    case 'boolean':
      return { boolValue: v };
    case 'number':
      return Number.isInteger(v) ? { intValue: String(v) } : { doubleValue: v };
    default:
      if (Array.isArray(v)) {
        const values: AnyValue[] = [];
        for (const item of v) {
          const a = anyValue(item);
          if (a) values.push(a);
        }
        return { arrayValue: { values } };
      }
      return undefined;
  }
}

function keyValues(attrs: Record<string, unknown> | undefined): KeyValue[] {
  const out: KeyValue[] = [];
  if (!attrs) return out;
  for (const key of Object.keys(attrs)) {
    const value = anyValue(attrs[key]);
    if (value) out.push({ key, value });
  }
  return out;
}

const usToNanos = (us: number): string => `${Math.round(us)}000`;

function otlpSpan(s: SpanRecord): Record<string, unknown> {
  const attributes: Record<string, unknown> = shallowCopy(s.attributes);
  if (s.function !== undefined) attributes['code.function.name'] = s.function;
  if (s.file !== undefined) attributes['code.file.path'] = s.file;
  if (s.line !== undefined) attributes['code.line.number'] = s.line;
  if (s.module !== undefined) attributes['cyb.code.module'] = s.module;
  if (s.arity !== undefined) attributes['cyb.code.arity'] = s.arity;
  const span: Record<string, unknown> = {
    traceId: s.traceId,
    spanId: s.spanId,
    name: s.name,
    kind: KIND_TO_OTLP[s.kind] ?? 1,
    startTimeUnixNano: usToNanos(s.timestamp),
    endTimeUnixNano: usToNanos(s.timestamp + s.durationUs),
    attributes: keyValues(attributes),
    events: s.events.map((e) => ({ timeUnixNano: usToNanos(e.timestamp), name: e.name, attributes: keyValues(e.attributes) })),
    links: s.links.map((l) => ({ traceId: l.traceId, spanId: l.spanId, attributes: keyValues(l.attributes) })),
    status: s.status.message !== undefined ? { code: STATUS_TO_OTLP[s.status.code], message: s.status.message } : { code: STATUS_TO_OTLP[s.status.code] },
  };
  if (s.parentSpanId !== undefined) span.parentSpanId = s.parentSpanId;
  return span;
}

/**
 * An OTLP/HTTP JSON `ExportTraceServiceRequest` body for `spans`, one resource per process.
 *
 * @example
 * const body = JSON.stringify(toOtlpJson(collector.traces().flatMap((t) => t.spans)));
 */
export function toOtlpJson(spans: readonly SpanRecord[]): { resourceSpans: unknown[] } {
  const byResource = new Map<Readonly<Record<string, string | number>>, SpanRecord[]>();
  for (const s of spans) {
    const list = byResource.get(s.resource);
    if (list) list.push(s);
    else byResource.set(s.resource, [s]);
  }
  const resourceSpans: unknown[] = [];
  for (const [resource, list] of byResource) {
    resourceSpans.push({
      resource: { attributes: keyValues(resource) },
      scopeSpans: [{ scope: { name: '@cyb/core' }, spans: list.map(otlpSpan) }],
    });
  }
  return { resourceSpans };
}

/** A body that is not an OTLP/JSON trace export request; `path` says where it went wrong. */
export class OtlpDecodeError extends Error {
  readonly path: string;
  constructor(message: string, path: string) {
    super(`${path}: ${message}`);
    this.name = 'OtlpDecodeError';
    this.path = path;
  }
}

function fail(message: string, path: string): never {
  throw new OtlpDecodeError(message, path);
}

function array(value: unknown, path: string): unknown[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) fail('expected an array', path);
  return value;
}

function object(value: unknown, path: string): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) fail('expected an object', path);
  return value as Record<string, unknown>;
}

// Ids are hex in OTLP/JSON; some senders use the protobuf default (base64), so both are read.
function id(value: unknown, bytes: number, path: string, optional: boolean): string | undefined {
  if ((value === undefined || value === null || value === '') && optional) return undefined;
  if (typeof value !== 'string') fail('expected a hex id', path);
  const hex = value.length === bytes * 2 && /^[0-9a-fA-F]+$/.test(value) ? value.toLowerCase() : Buffer.from(value, 'base64').toString('hex');
  if (hex.length !== bytes * 2 || /^0+$/.test(hex)) {
    if (optional && /^0+$/.test(hex)) return undefined;
    fail(`expected a ${bytes}-byte id`, path);
  }
  return hex;
}

function nanos(value: unknown, path: string): bigint {
  if (typeof value === 'string' && /^\d{1,20}$/.test(value)) return BigInt(value);
  if (typeof value === 'number' && Number.isFinite(value) && value >= 0) return BigInt(Math.round(value));
  if (value && typeof value === 'object' && 'low' in value && 'high' in value) {
    const { low, high } = value as { low: number; high: number };
    return (BigInt(high >>> 0) << 32n) | BigInt(low >>> 0);
  }
  fail('expected a time in nanoseconds', path);
}

function fromAnyValue(value: unknown, depth = 0): unknown {
  if (value === null || typeof value !== 'object' || depth > 4) return undefined;
  const v = value as Record<string, unknown>;
  if ('stringValue' in v) return String(v.stringValue);
  if ('boolValue' in v) return Boolean(v.boolValue);
  if ('intValue' in v) return Number(v.intValue);
  if ('doubleValue' in v) return Number(v.doubleValue);
  if ('arrayValue' in v) {
    const values = (v.arrayValue as { values?: unknown } | undefined)?.values;
    return Array.isArray(values) ? values.map((x) => fromAnyValue(x, depth + 1)).filter((x) => x !== undefined && typeof x !== 'object') : [];
  }
  if ('kvlistValue' in v || 'bytesValue' in v) return JSON.stringify(v);
  return undefined;
}

const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

function attributes(list: unknown, path: string): Record<string, unknown> {
  const out: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  for (const [i, item] of array(list, path).entries()) {
    const kv = object(item, `${path}[${i}]`);
    if (typeof kv.key !== 'string') fail('expected a string key', `${path}[${i}].key`);
    if (FORBIDDEN_KEYS.has(kv.key)) continue;
    const value = fromAnyValue(kv.value);
    if (value !== undefined) out[kv.key] = value;
  }
  return { ...out };
}

function takeString(attrs: Record<string, unknown>, key: string): string | undefined {
  const v = attrs[key];
  delete attrs[key];
  return typeof v === 'string' ? v : undefined;
}

function takeNumber(attrs: Record<string, unknown>, key: string): number | undefined {
  const v = attrs[key];
  delete attrs[key];
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

const STATUS_FROM_OTLP: Record<number, SpanStatusRecord['code']> = { 0: 'unset', 1: 'ok', 2: 'error' };
const STATUS_NAMES: Record<string, SpanStatusRecord['code']> = { STATUS_CODE_UNSET: 'unset', STATUS_CODE_OK: 'ok', STATUS_CODE_ERROR: 'error' };
const KIND_NAMES: Record<string, SpanKind> = {
  SPAN_KIND_INTERNAL: 'internal',
  SPAN_KIND_SERVER: 'server',
  SPAN_KIND_CLIENT: 'client',
  SPAN_KIND_PRODUCER: 'producer',
  SPAN_KIND_CONSUMER: 'consumer',
};

/**
 * Span records from an OTLP/HTTP JSON trace export body (a string, Buffer or parsed object), as sent
 * by this package's exporter or any OpenTelemetry SDK. Throws `OtlpDecodeError` for anything else.
 *
 * @example
 * const spans = fromOtlpJson(requestBody);
 * for (const s of spans) collector.add(s);
 */
export function fromOtlpJson(body: unknown): SpanRecord[] {
  let doc: unknown = body;
  if (typeof body === 'string' || body instanceof Uint8Array) {
    try {
      doc = JSON.parse(typeof body === 'string' ? body : Buffer.from(body).toString('utf8'));
    } catch (err) {
      throw new OtlpDecodeError(`not JSON (${(err as Error).message})`, '$');
    }
  }
  const root = object(doc, '$');
  if (!('resourceSpans' in root)) fail('missing resourceSpans', '$');
  const out: SpanRecord[] = [];
  for (const [ri, rs] of array(root.resourceSpans, '$.resourceSpans').entries()) {
    const rpath = `$.resourceSpans[${ri}]`;
    const rsObj = object(rs, rpath);
    const resourceAttrs = rsObj.resource === undefined ? {} : attributes(object(rsObj.resource, `${rpath}.resource`).attributes, `${rpath}.resource.attributes`);
    const resource: Record<string, string | number> = {};
    for (const [k, v] of Object.entries(resourceAttrs)) if (typeof v === 'string' || typeof v === 'number') resource[k] = v;
    const frozen = Object.freeze(resource);
    const scopes = rsObj.scopeSpans ?? rsObj.instrumentationLibrarySpans;
    for (const [si, ss] of array(scopes, `${rpath}.scopeSpans`).entries()) {
      const spath = `${rpath}.scopeSpans[${si}]`;
      for (const [pi, sp] of array(object(ss, spath).spans, `${spath}.spans`).entries()) {
        const path = `${spath}.spans[${pi}]`;
        const s = object(sp, path);
        const attrs = attributes(s.attributes, `${path}.attributes`);
        const start = nanos(s.startTimeUnixNano, `${path}.startTimeUnixNano`);
        const end = s.endTimeUnixNano === undefined ? start : nanos(s.endTimeUnixNano, `${path}.endTimeUnixNano`);
        const status = s.status === undefined ? {} : object(s.status, `${path}.status`);
        const statusCode = typeof status.code === 'string' ? STATUS_NAMES[status.code] : STATUS_FROM_OTLP[Number(status.code ?? 0)];
        const kind = typeof s.kind === 'string' ? KIND_NAMES[s.kind] : OTLP_TO_KIND[Number(s.kind ?? 1)];
        const events: EventRecord[] = array(s.events, `${path}.events`).map((e, i) => {
          const ev = object(e, `${path}.events[${i}]`);
          const rec: EventRecord = { name: String(ev.name ?? ''), timestamp: Number(nanos(ev.timeUnixNano ?? 0, `${path}.events[${i}].timeUnixNano`) / 1000n) };
          const a = attributes(ev.attributes, `${path}.events[${i}].attributes`);
          if (Object.keys(a).length > 0) rec.attributes = a as EventRecord['attributes'];
          return rec;
        });
        const links: LinkRecord[] = array(s.links, `${path}.links`).map((l, i) => {
          const lk = object(l, `${path}.links[${i}]`);
          return {
            traceId: id(lk.traceId, 16, `${path}.links[${i}].traceId`, false) as string,
            spanId: id(lk.spanId, 8, `${path}.links[${i}].spanId`, false) as string,
          };
        });
        const record: SpanRecord = {
          traceId: id(s.traceId, 16, `${path}.traceId`, false) as string,
          spanId: id(s.spanId, 8, `${path}.spanId`, false) as string,
          parentSpanId: id(s.parentSpanId, 8, `${path}.parentSpanId`, true),
          name: typeof s.name === 'string' ? s.name : fail('expected a string', `${path}.name`),
          kind: kind ?? 'internal',
          module: takeString(attrs, 'cyb.code.module'),
          function: takeString(attrs, 'code.function.name') ?? takeString(attrs, 'code.function'),
          arity: takeNumber(attrs, 'cyb.code.arity'),
          file: takeString(attrs, 'code.file.path') ?? takeString(attrs, 'code.filepath'),
          line: takeNumber(attrs, 'code.line.number') ?? takeNumber(attrs, 'code.lineno'),
          timestamp: Number(start / 1000n),
          durationUs: end > start ? Number((end - start) / 1000n) : 0,
          status: typeof status.message === 'string' && status.message !== '' ? { code: statusCode ?? 'unset', message: status.message } : { code: statusCode ?? 'unset' },
          attributes: attrs as SpanRecord['attributes'],
          links,
          events,
          resource: frozen,
        };
        out.push(record);
      }
    }
  }
  return out;
}

export interface OtlpHttpExporterOptions {
  /** Endpoint; default `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `http://127.0.0.1:4318/v1/traces`. */
  url?: string;
  /** Extra request headers (authentication). */
  headers?: Record<string, string>;
  /** Spans waiting to be sent at most; more are dropped and counted. Default 2048. */
  maxQueue?: number;
  /** Spans per request at most. Default 512. */
  maxBatch?: number;
  /** Time between scheduled sends. Default 1000 ms. */
  intervalMs?: number;
  /** Request timeout. Default 5000 ms. */
  timeoutMs?: number;
  /** Retries of a failed request, with exponential backoff. Default 3. */
  retries?: number;
}

export interface OtlpExporterStats {
  queued: number;
  exported: number;
  /** Spans dropped because the queue was full. */
  droppedQueueFull: number;
  /** Spans dropped after the last retry failed. */
  droppedFailed: number;
  failedRequests: number;
  retries: number;
}

/**
 * Sends finished spans of this process as OTLP/HTTP JSON (`POST /v1/traces`) in batches. Bounded:
 * when the endpoint is slow or down, spans are dropped and counted, never piled up, and nothing
 * throws into the application.
 *
 * @example
 * const exporter = new OtlpHttpExporter({ url: 'http://127.0.0.1:4318/v1/traces' }).start();
 * process.on('beforeExit', () => exporter.shutdown());
 */
export class OtlpHttpExporter {
  readonly url: URL;
  readonly #headers: Record<string, string>;
  readonly #maxQueue: number;
  readonly #maxBatch: number;
  readonly #intervalMs: number;
  readonly #timeoutMs: number;
  readonly #retries: number;
  #queue: SpanRecord[] = [];
  #stats: OtlpExporterStats = { queued: 0, exported: 0, droppedQueueFull: 0, droppedFailed: 0, failedRequests: 0, retries: 0 };
  #timer: NodeJS.Timeout | undefined;
  #unsubscribe: (() => void) | undefined;
  #sending: Promise<void> | undefined;
  #agent: http.Agent;

  constructor(options: OtlpHttpExporterOptions = {}) {
    const raw = options.url ?? process.env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? 'http://127.0.0.1:4318/v1/traces';
    this.url = new URL(raw);
    if (this.url.protocol !== 'http:' && this.url.protocol !== 'https:') throw new TypeError(`OtlpHttpExporter: unsupported URL ${raw}`);
    this.#headers = { ...options.headers };
    this.#maxQueue = options.maxQueue ?? 2048;
    this.#maxBatch = options.maxBatch ?? 512;
    this.#intervalMs = options.intervalMs ?? 1000;
    this.#timeoutMs = options.timeoutMs ?? 5000;
    this.#retries = options.retries ?? 3;
    this.#agent = this.url.protocol === 'https:' ? new https.Agent({ keepAlive: true }) : new http.Agent({ keepAlive: true });
  }

  /** Subscribes to finished spans and sends them on a timer that never keeps the process alive. */
  start(): this {
    if (this.#unsubscribe) return this;
    this.#unsubscribe = onSpanEnd((span) => this.add(span));
    this.#timer = setInterval(() => void this.flush(), this.#intervalMs);
    this.#timer.unref();
    return this;
  }

  /** Queues one span; drops and counts it when the queue is full. */
  add(span: SpanRecord): void {
    if (this.#queue.length >= this.#maxQueue) {
      this.#stats.droppedQueueFull++;
      return;
    }
    this.#queue.push(span);
    if (this.#queue.length >= this.#maxBatch && this.#sending === undefined) void this.flush();
  }

  /** Sends everything queued. Resolves when done; never rejects. */
  flush(): Promise<void> {
    if (this.#sending) return this.#sending.then(() => (this.#queue.length > 0 ? this.flush() : undefined));
    if (this.#queue.length === 0) return Promise.resolve();
    this.#sending = this.#drain().finally(() => {
      this.#sending = undefined;
    });
    return this.#sending;
  }

  async #drain(): Promise<void> {
    while (this.#queue.length > 0) {
      const batch = this.#queue.splice(0, this.#maxBatch);
      let body: string;
      try {
        body = JSON.stringify(toOtlpJson(batch));
      } catch (err) {
        debug('OTLP encoding failed: %o', err);
        this.#stats.droppedFailed += batch.length;
        continue;
      }
      let sent = false;
      for (let attempt = 0; attempt <= this.#retries && !sent; attempt++) {
        if (attempt > 0) {
          this.#stats.retries++;
          const backoff = Math.min(100 * 2 ** (attempt - 1), 2000) * (0.5 + Math.random() / 2);
          // Referenced on purpose: a flush the application awaits must be able to finish.
          await new Promise((resolve) => setTimeout(resolve, backoff));
        }
        sent = await this.#post(body);
      }
      if (sent) this.#stats.exported += batch.length;
      else this.#stats.droppedFailed += batch.length;
    }
  }

  // Our own requests must not be traced, or each export would produce spans to export.
  #post(body: string): Promise<boolean> {
    return context.with(suppressTracing(context.active()), () => new Promise<boolean>((resolve) => {
      const client = this.url.protocol === 'https:' ? https : http;
      const req = client.request(
        this.url,
        {
          method: 'POST',
          agent: this.#agent,
          timeout: this.#timeoutMs,
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...this.#headers },
        },
        (res) => {
          res.resume();
          res.on('end', () => {
            const ok = (res.statusCode ?? 0) >= 200 && (res.statusCode ?? 0) < 300;
            if (!ok) {
              this.#stats.failedRequests++;
              debug('OTLP endpoint answered %d', res.statusCode);
            }
            resolve(ok);
          });
          res.on('error', () => resolve(false));
        },
      );
      req.on('timeout', () => req.destroy(new Error('OTLP request timed out')));
      req.on('error', (err) => {
        this.#stats.failedRequests++;
        debug('OTLP request failed: %s', err.message);
        resolve(false);
      });
      req.end(body);
    }));
  }

  stats(): OtlpExporterStats {
    return { ...this.#stats, queued: this.#queue.length };
  }

  /** Stops receiving spans, sends what is queued, and releases the timer and sockets. */
  async shutdown(): Promise<void> {
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.flush();
    this.#agent.destroy();
  }
}
