/**
 * Trace headers in an AMQP headers table.
 *
 * On the way in the table is hostile input decoded by amqplib (it builds the object by plain
 * assignment, so a header named `__proto__` swaps its prototype); core's default getter already
 * reads own keys only and accepts only text and bytes. This module answers what core does not: was
 * there any trace header at all, and how the caller's headers join the injected ones.
 */

type Headers = Record<string, unknown>;

// Keys that make a table "carry trace context", valid or not (B3 multi headers in both spellings).
const TRACE_KEYS = [
  'traceparent', 'b3', 'x-b3-traceid', 'x-b3-spanid', 'x-b3-sampled', 'x-b3-flags',
  'X-B3-TraceId', 'X-B3-SpanId', 'X-B3-Sampled', 'X-B3-Flags',
];

/** True when `value` is an object amqplib could have decoded a table into. */
export function isHeaderTable(value: unknown): value is Headers {
  return value !== null && typeof value === 'object' && !Array.isArray(value) && !(value instanceof Uint8Array);
}

/** True when the table carries at least one trace header key, usable or not. */
export function hasTraceKey(headers: Headers): boolean {
  for (const key of TRACE_KEYS) if (Object.hasOwn(headers, key)) return true;
  return false;
}

/**
 * Copies what amqplib would encode from the caller's table (every enumerable key, inherited ones
 * too: amqplib encodes with for...in) into `headers`, where inject has already written. A caller's
 * header of a format inject wrote is left out, so an old `tracestate` never rides beside a new
 * `traceparent`; formats inject did not write (a caller's own `baggage`, say) pass through.
 */
export function copyCallerHeaders(headers: Headers, caller: object): void {
  // Single-key formats (b3, baggage) are covered by the own-key check; multi-key ones need the group.
  const w3c = headers.traceparent !== undefined;
  const multi = headers['x-b3-traceid'] !== undefined;
  for (const key in caller) {
    if (Object.hasOwn(headers, key)) continue;
    if (w3c && key === 'tracestate') continue;
    if (multi && (key === 'x-b3-spanid' || key === 'x-b3-sampled' || key === 'x-b3-flags' || key === 'x-b3-parentspanid')) continue;
    const value = (caller as Headers)[key];
    // A header literally named __proto__ must stay a header, not become the copy's prototype.
    if (key === '__proto__') Object.defineProperty(headers, key, { value, writable: true, enumerable: true, configurable: true });
    else headers[key] = value;
  }
}
