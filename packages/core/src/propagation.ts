import {
  createContextKey,
  propagation,
  ROOT_CONTEXT,
  trace,
  TraceFlags,
  type Context,
  type TextMapGetter,
} from '@opentelemetry/api';
import { isTracingSuppressed, TraceState, W3CBaggagePropagator } from '@opentelemetry/core';
import { B3InjectEncoding, B3Propagator } from '@opentelemetry/propagator-b3';
import { SAMPLING_DECISION_KEY } from './span.js';
import { checkFormats, settings, type PropagationFormat } from './internal/config.js';
import { active } from './internal/context.js';
import { debug } from './internal/debug.js';
import { link, SPAN_KEY } from './internal/linked-context.js';
import { checkTraceparent, checkTracestate, CheckedSpanContext, hasValidIds, isB3SpanId, isB3TraceId, parseB3Single } from './internal/validate.js';

/** Reads one header from a carrier. `keys` is optional. */
export interface CarrierGetter<C = unknown> {
  get(carrier: C, key: string): unknown;
  keys?(carrier: C): string[];
}

/** Writes one header into a carrier. */
export interface CarrierSetter<C = unknown> {
  set(carrier: C, key: string, value: string): void;
}

export interface InjectOptions<C = unknown> {
  /** The context to propagate; default the active one. */
  context?: Context;
  /** How to write into the carrier; default plain property assignment. */
  setter?: CarrierSetter<C>;
  /** Formats to write; default from `configure()` (`['w3c', 'b3']`). */
  formats?: readonly PropagationFormat[];
}

export interface ExtractOptions<C = unknown> {
  /** How to read the carrier; default reads plain objects and Maps with string, Buffer or array values. */
  getter?: CarrierGetter<C>;
  /** Formats to try, in order; default from `configure()` (`['w3c', 'b3', 'b3multi']`). */
  formats?: readonly PropagationFormat[];
}

/** Counters of what `extract` saw, since start or the last `resetPropagationStats()`. */
export interface PropagationStats {
  /** Carriers that yielded a remote parent. */
  extracted: number;
  /** Carriers with no trace headers at all. */
  missing: number;
  /** Carriers whose trace headers were all rejected (malformed, duplicated, oversized). */
  rejected: number;
  invalidTraceparent: number;
  invalidTracestate: number;
  invalidB3: number;
  /** B3 sampling-only headers (`b3: 0`) honoured without a parent. */
  samplingOnly: number;
  /** Failures inside a getter, setter or propagator, swallowed. */
  errors: number;
}

const stats: PropagationStats = {
  extracted: 0,
  missing: 0,
  rejected: 0,
  invalidTraceparent: 0,
  invalidTracestate: 0,
  invalidB3: 0,
  samplingOnly: 0,
  errors: 0,
};

/** A copy of the propagation counters. */
export function propagationStats(): PropagationStats {
  return { ...stats };
}

export function resetPropagationStats(): void {
  for (const key of Object.keys(stats) as (keyof PropagationStats)[]) stats[key] = 0;
}

const baggage = new W3CBaggagePropagator();
const b3Single = new B3Propagator({ injectEncoding: B3InjectEncoding.SINGLE_HEADER });
const b3Multi = new B3Propagator({ injectEncoding: B3InjectEncoding.MULTI_HEADER });
// The same key the B3 propagator sets for `d` / `X-B3-Flags: 1` (createContextKey uses Symbol.for).
const B3_DEBUG_FLAG_KEY = createContextKey('OpenTelemetry Context Key B3 Debug Flag');

const MAX_HEADER_LENGTH = 8192;
const INVALID = null;
const latin1 = Buffer.prototype.toString as (this: Buffer, encoding: 'latin1') => string;
type HeaderValue = string | undefined | typeof INVALID;

const MULTI_HEADER_NAMES: Record<string, string> = {
  'x-b3-traceid': 'X-B3-TraceId',
  'x-b3-spanid': 'X-B3-SpanId',
  'x-b3-parentspanid': 'X-B3-ParentSpanId',
  'x-b3-sampled': 'X-B3-Sampled',
  'x-b3-flags': 'X-B3-Flags',
};

const hasOwn = Object.prototype.hasOwnProperty;

function ownValue(carrier: object, key: string): unknown {
  if (carrier instanceof Map) return carrier.get(key);
  return hasOwn.call(carrier, key) ? (carrier as Record<string, unknown>)[key] : undefined;
}

/** Reads plain objects (exact key, then the canonical `X-B3-*` spelling) and Maps. */
export const defaultGetter: CarrierGetter<unknown> = {
  get(carrier: unknown, key: string): unknown {
    if (carrier === null || typeof carrier !== 'object') return undefined;
    const value = ownValue(carrier, key);
    if (value !== undefined) return value;
    const canonical = MULTI_HEADER_NAMES[key];
    return canonical === undefined ? undefined : ownValue(carrier, canonical);
  },
  keys(carrier: unknown): string[] {
    if (carrier === null || typeof carrier !== 'object') return [];
    return carrier instanceof Map ? [...carrier.keys()].map(String) : Object.keys(carrier);
  },
};

/** Assigns properties on a plain object. */
export const defaultSetter: CarrierSetter<unknown> = {
  set(carrier: unknown, key: string, value: string): void {
    if (carrier instanceof Map) carrier.set(key, value);
    else (carrier as Record<string, unknown>)[key] = value;
  },
};

function toText(value: unknown): HeaderValue {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') return value.length > MAX_HEADER_LENGTH ? INVALID : value;
  if (value instanceof Uint8Array) {
    if (value.byteLength > MAX_HEADER_LENGTH) return INVALID;
    // Buffers (kafkajs's header values) are read as they are; a new view over the same memory costs
    // a typed array per header. Buffer's own method, so a value's own `toString` is never called.
    if (value instanceof Buffer) return latin1.call(value, 'latin1');
    return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('latin1');
  }
  return INVALID;
}

/*
 * The default getter's read of the four headers every extract looks at, on a plain object: each by
 * its literal name at a site of its own, so that each read site sees the carriers of one adapter
 * (monomorphic), where the getter's one keyed read serves every name of every carrier (megamorphic),
 * and the own-property check only for a header that is there. A value found on the prototype chain
 * alone is ignored, as `ownValue` ignores it.
 */
function rawHeader(carrier: unknown, getter: CarrierGetter, key: string): unknown {
  if (getter !== defaultGetter || carrier === null || typeof carrier !== 'object' || carrier instanceof Map) return getter.get(carrier, key);
  const c = carrier as Record<string, unknown>;
  let value: unknown;
  switch (key) {
    case 'traceparent':
      value = c['traceparent'];
      break;
    case 'tracestate':
      value = c['tracestate'];
      break;
    case 'b3':
      value = c['b3'];
      break;
    case 'baggage':
      value = c['baggage'];
      break;
    default:
      return defaultGetter.get(carrier, key);
  }
  return value !== undefined && hasOwn.call(c, key) ? value : undefined;
}

/** Reads a header; `list` headers may repeat and are joined, any other header repeated is invalid. */
function readHeader(carrier: unknown, getter: CarrierGetter, key: string, list: boolean): HeaderValue {
  const raw = rawHeader(carrier, getter, key);
  if (!Array.isArray(raw)) return toText(raw);
  if (raw.length === 0) return undefined;
  if (raw.length === 1) return toText(raw[0]);
  if (!list || raw.length > 64) return INVALID;
  const parts: string[] = [];
  let total = 0;
  for (const item of raw) {
    const text = toText(item);
    if (typeof text !== 'string') return INVALID;
    total += text.length + 1;
    if (total > MAX_HEADER_LENGTH) return INVALID;
    parts.push(text);
  }
  return parts.join(',');
}

const recordGetter: TextMapGetter<Record<string, string>> = {
  get: (carrier, key) => carrier[key],
  keys: (carrier) => Object.keys(carrier),
};

type Found = { ctx: Context } | 'absent' | 'invalid';

// Optional white space around the value (RFC 7230 OWS: space and horizontal tab).
function trimOws(value: string): string {
  const first = value.charCodeAt(0);
  const last = value.charCodeAt(value.length - 1);
  if (first !== 0x20 && first !== 0x09 && last !== 0x20 && last !== 0x09) return value;
  return value.replace(/^[ \t]+|[ \t]+$/g, '');
}

function extractW3c(carrier: unknown, getter: CarrierGetter): Found {
  const header = readHeader(carrier, getter, 'traceparent', false);
  if (header === undefined) return 'absent';
  const traceparent = header === INVALID ? undefined : trimOws(header);
  if (traceparent === undefined || checkTraceparent(traceparent) !== 'ok') {
    stats.invalidTraceparent++;
    return 'invalid';
  }
  let traceState: TraceState | undefined;
  const state = readHeader(carrier, getter, 'tracestate', true);
  if (typeof state === 'string') {
    const checked = checkTracestate(state);
    if (checked !== undefined) traceState = new TraceState(checked);
    else if (trimOws(state) !== '') stats.invalidTracestate++;
  } else if (state === INVALID) {
    stats.invalidTracestate++;
  }
  // checkTraceparent has validated every field, so the span context is built from them directly
  // rather than parsed a second time.
  const remote = trace.wrapSpanContext(
    new CheckedSpanContext(traceparent.slice(3, 35), traceparent.slice(36, 52), parseInt(traceparent.slice(53, 55), 16), traceState, true),
  );
  return { ctx: link(ROOT_CONTEXT, SPAN_KEY, remote) };
}

function decision(sampling: string): Context {
  stats.samplingOnly++;
  const ctx = ROOT_CONTEXT.setValue(SAMPLING_DECISION_KEY, sampling !== '0');
  return sampling === 'd' ? ctx.setValue(B3_DEBUG_FLAG_KEY, 'd') : ctx;
}

function extractB3Single(carrier: unknown, getter: CarrierGetter): Found {
  const header = readHeader(carrier, getter, 'b3', false);
  if (header === undefined) return 'absent';
  const parsed = header === INVALID ? { kind: 'invalid' as const } : parseB3Single(trimOws(header));
  if (parsed.kind === 'invalid') {
    stats.invalidB3++;
    return 'invalid';
  }
  if (parsed.kind === 'decision') return { ctx: decision(parsed.sampling) };
  const value = parsed.sampling === undefined ? `${parsed.traceId}-${parsed.spanId}` : `${parsed.traceId}-${parsed.spanId}-${parsed.sampling}`;
  return { ctx: b3Single.extract(ROOT_CONTEXT, { b3: value }, recordGetter) };
}

function extractB3Multi(carrier: unknown, getter: CarrierGetter): Found {
  const traceId = readHeader(carrier, getter, 'x-b3-traceid', false);
  const spanId = readHeader(carrier, getter, 'x-b3-spanid', false);
  const sampled = readHeader(carrier, getter, 'x-b3-sampled', false);
  const flags = readHeader(carrier, getter, 'x-b3-flags', false);
  const parent = readHeader(carrier, getter, 'x-b3-parentspanid', false);
  if (traceId === undefined && spanId === undefined) {
    if (flags === '1') return { ctx: decision('d') };
    if (sampled === '0' || sampled === '1') return { ctx: decision(sampled) };
    if (sampled === 'true' || sampled === 'false') return { ctx: decision(sampled === 'true' ? '1' : '0') };
    if (sampled === undefined && flags === undefined && parent === undefined) return 'absent';
    stats.invalidB3++;
    return 'invalid';
  }
  const okSampled = sampled === undefined || sampled === '0' || sampled === '1' || sampled === 'true' || sampled === 'false';
  const okFlags = flags === undefined || flags === '0' || flags === '1';
  if (
    typeof traceId !== 'string' || !isB3TraceId(traceId) ||
    typeof spanId !== 'string' || !isB3SpanId(spanId) ||
    !okSampled || !okFlags ||
    (parent !== undefined && (typeof parent !== 'string' || !isB3SpanId(parent)))
  ) {
    stats.invalidB3++;
    return 'invalid';
  }
  const clean: Record<string, string> = { 'x-b3-traceid': traceId, 'x-b3-spanid': spanId };
  if (sampled !== undefined) clean['x-b3-sampled'] = sampled;
  if (flags !== undefined) clean['x-b3-flags'] = flags;
  const ctx = b3Multi.extract(ROOT_CONTEXT, clean, recordGetter);
  return trace.getSpanContext(ctx) === undefined ? 'invalid' : { ctx };
}

/**
 * True when a plain-object carrier has none of the headers `formats` and baggage would read, in any
 * spelling the default getter accepts. A value found anywhere (even on a prototype) sends the carrier
 * down the full path, which reads own properties only.
 */
function holdsNone(carrier: Record<string, unknown>, formats: readonly PropagationFormat[]): boolean {
  if (carrier.baggage !== undefined) return false;
  for (const format of formats) {
    if (format === 'w3c') {
      if (carrier.traceparent !== undefined) return false;
    } else if (format === 'b3') {
      if (carrier.b3 !== undefined) return false;
    } else {
      // The names of MULTI_HEADER_NAMES, written out so that each read is of one fixed property.
      if (
        carrier['x-b3-traceid'] !== undefined || carrier['x-b3-spanid'] !== undefined || carrier['x-b3-sampled'] !== undefined ||
        carrier['x-b3-flags'] !== undefined || carrier['x-b3-parentspanid'] !== undefined ||
        carrier['X-B3-TraceId'] !== undefined || carrier['X-B3-SpanId'] !== undefined || carrier['X-B3-Sampled'] !== undefined ||
        carrier['X-B3-Flags'] !== undefined || carrier['X-B3-ParentSpanId'] !== undefined
      ) {
        return false;
      }
    }
  }
  return true;
}

/**
 * The remote parent carried by `carrier`, or undefined. W3C is tried first, then B3 single, then B3
 * multi (configurable). Malformed, duplicated or oversized headers yield no parent and are counted in
 * `propagationStats()`; nothing here throws. The result also carries W3C baggage, and for B3
 * sampling-only headers a sampling decision for the next root span.
 *
 * @example
 * const parent = extract(req.headers);
 * const s = startSpan('GET /', { kind: 'server', parent: parent ?? null });
 */
export function extract<C = unknown>(carrier: C, options?: ExtractOptions<C>): Context | undefined {
  try {
    const getter = (options?.getter ?? defaultGetter) as CarrierGetter;
    const formats = options?.formats ?? settings.extract;
    if (carrier === null || carrier === undefined || (typeof carrier !== 'object' && typeof carrier !== 'function')) {
      stats.missing++;
      return undefined;
    }
    // Most carriers hold no trace headers at all (a request from an untraced client): a few property
    // reads settle that, where reading each header through the getter costs several times as much.
    if (getter === defaultGetter && !(carrier instanceof Map) && holdsNone(carrier as Record<string, unknown>, formats)) {
      stats.missing++;
      return undefined;
    }
    let found: Context | undefined;
    let sawInvalid = false;
    for (const format of formats) {
      const result = format === 'w3c' ? extractW3c(carrier, getter) : format === 'b3' ? extractB3Single(carrier, getter) : extractB3Multi(carrier, getter);
      if (result === 'invalid') sawInvalid = true;
      else if (result !== 'absent') {
        found = result.ctx;
        break;
      }
    }
    if (found !== undefined && trace.getSpanContext(found) !== undefined) stats.extracted++;
    else if (found === undefined) {
      if (sawInvalid) stats.rejected++;
      else stats.missing++;
    }
    const bag = readHeader(carrier, getter, 'baggage', true);
    if (typeof bag === 'string' && bag !== '') {
      const withBaggage = baggage.extract(found ?? ROOT_CONTEXT, { baggage: bag }, recordGetter);
      if (withBaggage !== ROOT_CONTEXT) found = withBaggage;
    }
    return found;
  } catch (err) {
    stats.errors++;
    debug('extract failed: %o', err);
    return undefined;
  }
}

// B3 keeps a 64-bit trace id 64-bit on the way out; the extractor pads it to 128 bits on the way in.
const PAD = '0000000000000000';
const HEX_BYTE: readonly string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

function b3TraceId(traceId: string): string {
  return traceId.startsWith(PAD) ? traceId.slice(16) : traceId;
}

/**
 * Writes the context (default: the active one) into `carrier`: `traceparent` and `tracestate` (w3c),
 * `b3` (b3), `x-b3-*` (b3multi), and `baggage`. Does nothing outside a valid span context or when
 * tracing is suppressed. Never throws.
 *
 * @example
 * const headers = {};
 * inject(headers);
 * await fetch(url, { headers });
 */
export function inject<C = unknown>(carrier: C, options?: InjectOptions<C>): void {
  try {
    const ctx = options?.context ?? active();
    if (carrier === null || typeof carrier !== 'object' || isTracingSuppressed(ctx)) return;
    const setter = (options?.setter ?? defaultSetter) as CarrierSetter;
    const sc = trace.getSpanContext(ctx);
    // The headers are written here rather than by the OpenTelemetry propagators: the same fields, with
    // the ids checked once for all formats.
    if (sc !== undefined && hasValidIds(sc)) {
      const flags = sc.traceFlags & 0xff;
      const sampled = (flags & TraceFlags.SAMPLED) === TraceFlags.SAMPLED ? '1' : '0';
      // Debug came in as `d` (B3 single header) or `X-B3-Flags: 1`; it travels on as debug in either format.
      const debugFlag = ctx.getValue(B3_DEBUG_FLAG_KEY);
      const isDebug = debugFlag === 'd' || debugFlag === '1';
      // With the default setter on a plain object, each header is stored by its literal name: the
      // setter's one keyed store, shared by every carrier of every adapter, is megamorphic.
      const record = setter === defaultSetter && !(carrier instanceof Map) ? (carrier as Record<string, string>) : undefined;
      for (const format of options?.formats ?? settings.inject) {
        if (format === 'w3c') {
          const parent = `00-${sc.traceId}-${sc.spanId}-${HEX_BYTE[flags] as string}`;
          if (record !== undefined) record['traceparent'] = parent;
          else setter.set(carrier, 'traceparent', parent);
          const state = sc.traceState?.serialize();
          if (state) {
            if (record !== undefined) record['tracestate'] = state;
            else setter.set(carrier, 'tracestate', state);
          }
        } else if (format === 'b3') {
          const single = `${b3TraceId(sc.traceId)}-${sc.spanId}-${isDebug ? 'd' : sampled}`;
          if (record !== undefined) record['b3'] = single;
          else setter.set(carrier, 'b3', single);
        } else {
          setter.set(carrier, 'x-b3-traceid', b3TraceId(sc.traceId));
          setter.set(carrier, 'x-b3-spanid', sc.spanId);
          if (isDebug) setter.set(carrier, 'x-b3-flags', '1');
          else setter.set(carrier, 'x-b3-sampled', sampled);
        }
      }
    }
    if (propagation.getBaggage(ctx) !== undefined) baggage.inject(ctx, carrier, setter);
  } catch (err) {
    stats.errors++;
    debug('inject failed: %o', err);
  }
}

/**
 * Checks a list of formats once, at setup; adapters call this for their `formats` options.
 *
 * @example
 * const formats = propagationFormats(options.formats ?? ['w3c']);
 */
export function propagationFormats(formats: readonly string[], option = 'formats'): readonly PropagationFormat[] {
  return checkFormats(formats, option);
}
