import { extract } from '@cyb/core';
import { tracingFailed } from './internal/stats.js';
import { text } from './internal/text.js';
import { traceFieldName, type Context } from './internal/trace-fields.js';

/** The fields of one stream entry, trace fields set apart. */
export interface UnwrappedStreamFields<V extends string | Buffer = string> {
  /** The application's fields by name (prototype-less; a repeated name keeps its last value). */
  fields: Record<string, V>;
  /** The application's fields as Redis returned them, `[name, value, name, value, ...]`, in order. */
  fieldList: V[];
  /** The trace fields the producer added (`traceparent`, `tracestate`, `b3`, ...), lower-case names. */
  traceFields: Record<string, string>;
  /** The producer's context, or undefined when the entry has no valid trace fields. */
  context: Context | undefined;
}

/**
 * Splits the flat field list of a stream entry (as XREAD, XREADGROUP or XRANGE return it) into the
 * application's fields and the trace fields a traced XADD appended, and extracts the producer's context.
 * Never throws. For consumers that run their own read loop instead of `consumeStream`.
 *
 * @example
 * const [[, entries]] = await redis.xread('STREAMS', 'orders', '0');
 * for (const [id, list] of entries) {
 *   const { fields, context } = unwrapStreamFields(list);
 *   const span = startSpan('process orders', { kind: 'consumer', parent: context ?? null });
 *   withContext(contextWithSpan(span), () => handle(id, fields));
 *   span.end();
 * }
 */
export function unwrapStreamFields<V extends string | Buffer>(list: readonly V[] | null | undefined): UnwrappedStreamFields<V> {
  const fields: Record<string, V> = Object.create(null);
  // Only the trace field names core writes ever become keys here, so a plain object is safe.
  const traceFields: Record<string, string> = {};
  const fieldList: V[] = [];
  let traced = false;
  if (!Array.isArray(list)) return { fields, fieldList, traceFields, context: undefined };
  for (let i = 0; i + 1 < list.length; i += 2) {
    const rawName = list[i]!;
    const value = list[i + 1]!;
    const name = text(rawName);
    const trace = traceFieldName(name);
    if (trace !== undefined) {
      traceFields[trace] = text(value);
      traced = true;
    } else {
      fields[name] = value;
      fieldList.push(rawName, value);
    }
  }
  let context: Context | undefined;
  if (traced) {
    try {
      context = extract(traceFields);
    } catch (error) {
      // extract is documented never to throw; this guards the host all the same.
      tracingFailed('unwrapStreamFields', error);
    }
  }
  return { fields, fieldList, traceFields, context };
}
