import { extract, inject } from '@cyb/core';

/** The context type of @cyb/core, named without depending on @opentelemetry/api directly. */
export type Context = NonNullable<ReturnType<typeof extract>>;

// Every key @cyb/core's inject can write (W3C Trace Context, W3C Baggage, B3 single and multi),
// in lower case. Only these are treated as trace fields; anything else belongs to the application.
const NAMES = new Set([
  'traceparent',
  'tracestate',
  'baggage',
  'b3',
  'x-b3-traceid',
  'x-b3-spanid',
  'x-b3-parentspanid',
  'x-b3-sampled',
  'x-b3-flags',
]);
const LONGEST = 17;

/** The lower-case trace field name `name` stands for, or undefined when it is an application field. */
export function traceFieldName(name: string): string | undefined {
  // Cheap rejection first: this runs for every field of every entry read.
  if (name.length > LONGEST || name.length < 2) return undefined;
  const c = name.charCodeAt(0) | 0x20;
  if (c !== 0x74 /* t */ && c !== 0x62 /* b */ && c !== 0x78 /* x */) return undefined;
  const lower = name.toLowerCase();
  return NAMES.has(lower) ? lower : undefined;
}

/**
 * Writes the trace fields of `context` (default: the active one) into a fresh record. A plain object:
 * inject writes only the names above, and V8 keeps a prototype-less one in slower dictionary mode.
 */
export function injectFields(context: Context | undefined): Record<string, string> {
  const carrier: Record<string, string> = {};
  inject(carrier, { context });
  return carrier;
}
