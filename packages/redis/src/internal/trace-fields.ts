import { extract, inject } from '@cyb/core';

/** The context type of @cyb/core, named without depending on @opentelemetry/api directly. */
export type Context = NonNullable<ReturnType<typeof extract>>;

// Every key @cyb/core's inject can write (W3C Trace Context, W3C Baggage, B3 single and multi),
// in lower case. Only these are treated as trace fields; anything else belongs to the application.
const NAMES = [
  'traceparent',
  'tracestate',
  'baggage',
  'b3',
  'x-b3-traceid',
  'x-b3-spanid',
  'x-b3-parentspanid',
  'x-b3-sampled',
  'x-b3-flags',
];
// The names by length: most application field names are rejected by their length alone.
const BY_LENGTH: (string[] | undefined)[] = [];
for (const name of NAMES) (BY_LENGTH[name.length] ??= []).push(name);

/** The name itself (a string this module holds) when `text` is one of the names above. */
function known(text: string): string | undefined {
  const candidates = BY_LENGTH[text.length];
  if (candidates === undefined) return undefined;
  for (const name of candidates) if (name === text) return name;
  return undefined;
}

/**
 * The lower-case trace field name `name` stands for, or undefined when it is an application field.
 * The name returned is always this module's own string, never `name`: read names are slices of
 * what Redis returned, and a record keyed with them would make V8 hash each slice and compare it
 * character by character with the literal keys `extract` looks up. This runs for every field of
 * every entry read and written: a name as inject writes it is found by length and one comparison,
 * and only a name of a known length whose first letter fits is lower-cased.
 */
export function traceFieldName(name: string): string | undefined {
  const length = name.length;
  if (length >= BY_LENGTH.length || BY_LENGTH[length] === undefined) return undefined;
  const exact = known(name);
  if (exact !== undefined) return exact;
  const first = name[0];
  if (first !== 'T' && first !== 'B' && first !== 'X' && first !== 't' && first !== 'b' && first !== 'x') return undefined;
  const lower = name.toLowerCase();
  return lower !== name ? known(lower) : undefined;
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
