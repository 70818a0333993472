import {
  SpanStatusCode,
  type Attributes,
  type AttributeValue,
  type Exception,
  type Link,
  type Span,
  type SpanContext,
  type SpanStatus,
  type TimeInput,
} from '@opentelemetry/api';
import { nowUs } from './internal/clock.js';
import { debug } from './internal/debug.js';
import { publishEnd, publishError } from './internal/channel.js';
import { hashTraceId } from './internal/trace-hash.js';
import { shallowCopy } from './shallow-copy.js';

/** What a span stands for, as OpenTelemetry's SpanKind, spelled in lower case. */
export type SpanKind = 'internal' | 'server' | 'client' | 'producer' | 'consumer';

/** Where the function a span stands for is declared: the key shared with the static call graph. */
export interface CodeLocation {
  module?: string;
  function?: string;
  arity?: number;
  file?: string;
  line?: number;
}

export interface SpanStatusRecord {
  code: 'unset' | 'ok' | 'error';
  message?: string;
}

export interface LinkRecord {
  traceId: string;
  spanId: string;
  attributes?: Attributes;
}

export interface EventRecord {
  name: string;
  /** Microseconds since the epoch. */
  timestamp: number;
  attributes?: Attributes;
}

/** A finished span as plain data: the one record every package, file and exporter shares. */
export interface SpanRecord {
  traceId: string;
  spanId: string;
  parentSpanId: string | undefined;
  name: string;
  kind: SpanKind;
  module: string | undefined;
  function: string | undefined;
  arity: number | undefined;
  file: string | undefined;
  line: number | undefined;
  /** Start, in microseconds since the epoch. */
  timestamp: number;
  durationUs: number;
  status: SpanStatusRecord;
  attributes: Attributes;
  links: LinkRecord[];
  events: EventRecord[];
  resource: Readonly<Record<string, string | number>>;
}

const MAX_EVENTS = 128;
const MAX_LINKS = 128;
// Most spans have no links or events and keep the default status: share those until first written.
const NO_LINKS: LinkRecord[] = Object.freeze([]) as unknown as LinkRecord[];
const NO_EVENTS: EventRecord[] = Object.freeze([]) as unknown as EventRecord[];
const UNSET: SpanStatusRecord = Object.freeze({ code: 'unset' }) as SpanStatusRecord;

function toUs(time: TimeInput | undefined): number | undefined {
  if (time === undefined) return undefined;
  if (typeof time === 'number') return Math.round(time * 1000); // epoch milliseconds
  if (time instanceof Date) return time.getTime() * 1000;
  if (Array.isArray(time)) return time[0] * 1e6 + Math.round(time[1] / 1000);
  return undefined;
}

function isAttributeValue(v: unknown): v is AttributeValue {
  const t = typeof v;
  if (t === 'string' || t === 'number' || t === 'boolean') return true;
  return Array.isArray(v);
}

/**
 * @internal The hash of `span`'s trace id that Collectors place traces by (internal/trace-hash.ts),
 * worked out at most once per span.
 */
export let traceHashOf: (span: CybSpan) => number;

/**
 * A span of Cybernetic Trace. It implements the OpenTelemetry `Span` interface, so code written against
 * `@opentelemetry/api` can use it, and it is also its own record (`SpanRecord`).
 *
 * @example
 * const s = startSpan('GET /users/:id', { kind: 'server' });
 * try { await handle(); } catch (err) { s.fail(err); throw err; } finally { s.end(); }
 */
export class CybSpan implements Span, SpanRecord {
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId: string | undefined;
  name: string;
  readonly kind: SpanKind;
  module: string | undefined;
  function: string | undefined;
  arity: number | undefined;
  file: string | undefined;
  line: number | undefined;
  readonly timestamp: number;
  durationUs = 0;
  status: SpanStatusRecord = UNSET;
  attributes: Attributes;
  links: LinkRecord[] = NO_LINKS;
  events: EventRecord[] = NO_EVENTS;
  readonly resource: Readonly<Record<string, string | number>>;
  /** True once `end()` ran. */
  ended = false;

  readonly #context: SpanContext;
  readonly #recording: boolean;
  // hashTraceId(traceId), -1 until known: given when the trace id was made here, else worked out once.
  #traceHash: number;

  static {
    traceHashOf = (span) => {
      if (span.#traceHash < 0) span.#traceHash = hashTraceId(span.traceId);
      return span.#traceHash;
    };
  }

  /** @internal Use `startSpan()`. */
  constructor(
    name: string,
    kind: SpanKind,
    spanContext: SpanContext,
    parentSpanId: string | undefined,
    recording: boolean,
    resource: Readonly<Record<string, string | number>>,
    attributes: Attributes | undefined,
    code: CodeLocation | undefined,
    links: readonly Link[] | undefined,
    startTime: TimeInput | undefined,
    traceHash: number,
  ) {
    this.name = name;
    this.kind = kind;
    this.#context = spanContext;
    this.#traceHash = traceHash;
    this.traceId = spanContext.traceId;
    this.spanId = spanContext.spanId;
    this.parentSpanId = parentSpanId;
    this.#recording = recording;
    this.resource = resource;
    this.attributes = attributes ? shallowCopy(attributes) : {};
    if (links) for (const l of links) this.addLink(l);
    if (code) {
      this.module = code.module;
      this.function = code.function;
      this.arity = code.arity;
      this.file = code.file;
      this.line = code.line;
    }
    // One number per span for time: the duration is taken against it at the end, on the same clock.
    this.timestamp = startTime === undefined ? nowUs() : toUs(startTime) ?? nowUs();
  }

  spanContext(): SpanContext {
    return this.#context;
  }

  setAttribute(key: string, value: AttributeValue): this {
    if (!this.ended && typeof key === 'string' && key !== '' && key !== '__proto__' && isAttributeValue(value)) this.attributes[key] = value;
    return this;
  }

  setAttributes(attributes: Attributes): this {
    if (attributes && typeof attributes === 'object') {
      for (const key of Object.keys(attributes)) this.setAttribute(key, attributes[key] as AttributeValue);
    }
    return this;
  }

  addEvent(name: string, attributesOrTime?: Attributes | TimeInput, time?: TimeInput): this {
    if (this.ended || this.events.length >= MAX_EVENTS) return this;
    let attributes: Attributes | undefined;
    if (attributesOrTime !== undefined && typeof attributesOrTime === 'object' && !Array.isArray(attributesOrTime) && !(attributesOrTime instanceof Date)) {
      attributes = attributesOrTime as Attributes;
    } else {
      time = attributesOrTime as TimeInput | undefined;
    }
    const event: EventRecord = { name: String(name), timestamp: toUs(time) ?? nowUs() };
    if (attributes) event.attributes = shallowCopy(attributes);
    if (this.events === NO_EVENTS) this.events = [];
    this.events.push(event);
    return this;
  }

  addLink(link: Link): this {
    if (this.ended || this.links.length >= MAX_LINKS || !link || !link.context) return this;
    const record: LinkRecord = { traceId: link.context.traceId, spanId: link.context.spanId };
    if (link.attributes) record.attributes = shallowCopy(link.attributes);
    if (this.links === NO_LINKS) this.links = [];
    this.links.push(record);
    return this;
  }

  addLinks(links: Link[]): this {
    for (const l of links) this.addLink(l);
    return this;
  }

  setStatus(status: SpanStatus): this {
    if (this.ended) return this;
    if (status.code === SpanStatusCode.ERROR) this.status = status.message ? { code: 'error', message: status.message } : { code: 'error' };
    else if (status.code === SpanStatusCode.OK) this.status = { code: 'ok' };
    else this.status = { code: 'unset' };
    return this;
  }

  updateName(name: string): this {
    if (!this.ended) this.name = name;
    return this;
  }

  isRecording(): boolean {
    return this.#recording && !this.ended;
  }

  recordException(exception: Exception, time?: TimeInput): void {
    if (this.ended) return;
    const attributes: Attributes = {};
    if (typeof exception === 'string') {
      attributes['exception.message'] = exception;
    } else if (exception && typeof exception === 'object') {
      const e = exception as { name?: unknown; message?: unknown; stack?: unknown; code?: unknown };
      if (typeof e.name === 'string') attributes['exception.type'] = e.name;
      else if (e.code !== undefined) attributes['exception.type'] = String(e.code);
      if (typeof e.message === 'string') attributes['exception.message'] = e.message;
      if (typeof e.stack === 'string') attributes['exception.stacktrace'] = e.stack;
    }
    this.addEvent('exception', attributes, time);
  }

  /**
   * Records `error` as this span's failure: an `exception` event and an error status. Does not end the span.
   * Accepts anything that can be thrown.
   */
  fail(error: unknown, message?: string): this {
    if (this.ended) return this;
    if (error instanceof Error || typeof error === 'string') this.recordException(error);
    else this.recordException({ message: safeString(error) });
    const text = message ?? (error instanceof Error ? error.message : safeString(error));
    this.status = { code: 'error', message: text };
    if (this.#recording) publishError(this, error);
    return this;
  }

  end(endTime?: TimeInput): void {
    if (this.ended) {
      debug('span %s (%s) ended twice; the second end is ignored', this.name, this.spanId);
      return;
    }
    this.durationUs = Math.max(0, (toUs(endTime) ?? nowUs()) - this.timestamp);
    this.ended = true;
    if (this.#recording) publishEnd(this);
  }

  /** A plain copy of the record, for JSON. */
  toJSON(): SpanRecord {
    return {
      traceId: this.traceId,
      spanId: this.spanId,
      parentSpanId: this.parentSpanId,
      name: this.name,
      kind: this.kind,
      module: this.module,
      function: this.function,
      arity: this.arity,
      file: this.file,
      line: this.line,
      timestamp: this.timestamp,
      durationUs: this.durationUs,
      status: this.status,
      attributes: this.attributes,
      links: this.links,
      events: this.events,
      resource: this.resource,
    };
  }
}

function safeString(value: unknown): string {
  try {
    return String(value);
  } catch {
    return Object.prototype.toString.call(value);
  }
}
