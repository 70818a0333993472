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
// Which lengths those names have: most application field names are rejected by their length alone.
const KNOWN_LENGTH = new Array<boolean>(Math.max(...[...NAMES].map((name) => name.length)) + 1).fill(false);
for (const name of NAMES) KNOWN_LENGTH[name.length] = true;

/**
 * The lower-case trace field name `name` stands for, or undefined when it is an application field.
 * This runs for every field of every entry read and written, and in a process that loads ioredis
 * every string method call looks the method up generically (see @cyb/core's scratch.ts): a name as
 * inject writes it is found with one set lookup, and only a name of a known length whose first letter
 * fits is lower-cased.
 */
export function traceFieldName(name: string): string | undefined {
  const length = name.length;
  if (length >= KNOWN_LENGTH.length || KNOWN_LENGTH[length] !== true) return undefined;
  if (NAMES.has(name)) return name;
  const first = name[0];
  if (first !== 'T' && first !== 'B' && first !== 'X' && first !== 't' && first !== 'b' && first !== 'x') return undefined;
  const lower = name.toLowerCase();
  return lower !== name && NAMES.has(lower) ? lower : undefined;
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
