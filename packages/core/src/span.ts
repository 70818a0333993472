import {
  createContextKey,
  ROOT_CONTEXT,
  trace,
  TraceFlags,
  type Attributes,
  type Context,
  type Link,
  type Span,
  type SpanContext,
  type TimeInput,
  type TraceState,
} from '@opentelemetry/api';
import { isTracingSuppressed } from '@opentelemetry/core';
import { CybSpan, traceHashOf, type CodeLocation, type SpanKind } from './CybSpan.js';
import { hasSpanSubscribers, publishStart } from './internal/channel.js';
import { settings } from './internal/config.js';
import { active, runIn } from './internal/context.js';
import { lastTraceIdHash, newSpanId, newTraceId, sampledByRatio } from './internal/ids.js';
import { link, SPAN_KEY } from './internal/linked-context.js';
import { CheckedSpanContext, hasValidIds } from './internal/validate.js';

/** What `span()` and `startSpan()` record besides the name. */
export interface SpanMeta {
  attributes?: Attributes;
  kind?: SpanKind;
  code?: CodeLocation;
  links?: readonly Link[];
}

export interface StartSpanOptions extends SpanMeta {
  /** The parent context; default the active one. `null` starts a new trace. */
  parent?: Context | null;
  /** Start time (epoch milliseconds, Date or HrTime); default now. */
  startTime?: TimeInput;
}

/** Set by `extract` for B3 sampling-only headers (`b3: 0`): a decision for the next root span. */
export const SAMPLING_DECISION_KEY = createContextKey('cyb.sampling-decision');

const NO_META: SpanMeta = Object.freeze({});

// W3C Trace Context Level 2: the trace id's right-most 7 bytes are random.
const RANDOM_FLAG = 0x02;

/**
 * Starts a span, child of `options.parent` (default: the active context). The caller ends it.
 * It does not become active by itself; use `withContext(contextWithSpan(s), fn)`.
 *
 * @example
 * const s = startSpan('process orders', { kind: 'consumer', parent: extract(msg.properties.headers) ?? null });
 */
export function startSpan(name: string, options: StartSpanOptions = {}): CybSpan {
  const parentCtx = options.parent === null ? ROOT_CONTEXT : options.parent ?? active();
  return createSpan(name, options, parentCtx, options.startTime);
}

function createSpan(name: string, meta: SpanMeta, parentCtx: Context, startTime: TimeInput | undefined): CybSpan {
  const parentSpan = parentCtx === ROOT_CONTEXT ? undefined : trace.getSpan(parentCtx);
  const parent = parentSpan?.spanContext();
  let traceId: string;
  let parentSpanId: string | undefined;
  let flags: number;
  let traceState: TraceState | undefined;
  let traceHash = -1;
  // Our own spans need no second look; others (remote parents, an OpenTelemetry SDK's spans) do.
  if (parent !== undefined && (parentSpan instanceof CybSpan || hasValidIds(parent))) {
    traceId = parent.traceId;
    parentSpanId = parent.spanId;
    flags = parent.traceFlags;
    traceState = parent.traceState;
    // One hash per trace and process: a child takes its parent's, worked out now if need be (a
    // remote parent's trace) while spans of this trace are being recorded.
    if (parentSpan instanceof CybSpan && parentSpan.isRecording()) traceHash = traceHashOf(parentSpan);
  } else {
    traceId = newTraceId();
    traceHash = lastTraceIdHash;
    const decision = parentCtx.getValue(SAMPLING_DECISION_KEY);
    const sampled = typeof decision === 'boolean' ? decision : sampledByRatio(traceId, settings.sampleRate);
    flags = (sampled ? TraceFlags.SAMPLED : TraceFlags.NONE) | RANDOM_FLAG;
  }
  const recording = (flags & TraceFlags.SAMPLED) !== 0 && !isTracingSuppressed(parentCtx);
  const spanContext = new CheckedSpanContext(traceId, newSpanId(), flags, traceState, false);
  const s = new CybSpan(
    String(name),
    meta.kind ?? 'internal',
    spanContext,
    parentSpanId,
    recording,
    settings.resource,
    meta.attributes,
    meta.code,
    meta.links,
    startTime,
    traceHash,
  );
  if (recording) publishStart(s);
  return s;
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return value !== null && (typeof value === 'object' || typeof value === 'function') && typeof (value as { then?: unknown }).then === 'function';
}

/**
 * Runs `fn` as a child span of the active one and returns its result unchanged (the same promise
 * object for async work). A throw or rejection is recorded and the same error is rethrown.
 * With nothing subscribed to the span channel, `fn` is simply called.
 *
 * @example
 * const user = await span('load user', { attributes: { 'user.id': id } }, () => db.users.find(id));
 */
export function span<T>(name: string, meta: SpanMeta | undefined, fn: () => T): T {
  if (!hasSpanSubscribers()) return fn();
  const parentCtx = active();
  const s = createSpan(name, meta ?? NO_META, parentCtx, undefined);
  let result: T;
  try {
    result = runIn(link(parentCtx, SPAN_KEY, s), fn);
  } catch (err) {
    s.fail(err);
    s.end();
    throw err;
  }
  if (isThenable(result)) {
    // Observe the settlement without replacing the caller's promise: identity and custom thenable
    // methods survive, and the rejection still reaches whoever awaits `result`.
    result.then(
      () => s.end(),
      (err: unknown) => {
        s.fail(err);
        s.end();
      },
    );
    return result;
  }
  s.end();
  return result;
}

/** The active span, or undefined outside any span. */
export function currentSpan(): Span | undefined {
  return trace.getSpan(active());
}

/**
 * The span context (trace id, span id, flags) carried by `ctx`, for links; undefined when none.
 *
 * @example
 * const producer = spanContextOf(extract(message.headers));
 * if (producer) receive.addLink({ context: producer });
 */
export function spanContextOf(ctx: Context | undefined): SpanContext | undefined {
  if (ctx === undefined) return undefined;
  const sc = trace.getSpanContext(ctx);
  return sc !== undefined && hasValidIds(sc) ? sc : undefined;
}

/** The root context: no span, no baggage. A consumer starts from it, not from whatever was active. */
export const rootContext: Context = ROOT_CONTEXT;

/** The active context. */
export function activeContext(): Context {
  return active();
}

/** `ctx` (default: the active context) with `span` as its span. */
export function contextWithSpan(span: Span, ctx?: Context): Context {
  return link(ctx ?? active(), SPAN_KEY, span);
}

/**
 * Runs `fn` with `ctx` as the active context, for the whole of its synchronous and asynchronous work.
 *
 * @example
 * withContext(contextWithSpan(serverSpan), () => next());
 */
export function withContext<T>(ctx: Context, fn: () => T): T {
  return runIn(ctx, fn);
}
