import { inject, type InjectOptions } from '@cyb/core';
import type { IHeaders } from 'kafkajs';

// The keys that name the parent span. A message forwarded with the headers of the message it came from
// still has the old ones; leaving them beside the new ones would give a reader two parents to choose from.
function isTraceKey(key: string): boolean {
  const k = key.toLowerCase();
  return k === 'traceparent' || k === 'tracestate' || k === 'b3' || k.startsWith('x-b3-');
}

/**
 * The headers to send: a new object with the caller's headers (never modified) minus stale trace keys,
 * plus the trace context of `options.context`. Values the application set (strings, Buffers, arrays) are
 * kept as they are. When there is nothing to propagate (tracing suppressed) the caller's own headers
 * are returned, so the message goes out exactly as given.
 */
export function headersWithContext(original: IHeaders | undefined, options: InjectOptions): IHeaders | undefined {
  const carrier: Record<string, string> = {};
  inject(carrier, options);
  let injected = false;
  for (const _ in carrier) {
    injected = true;
    break;
  }
  if (!injected) return original;
  if (original === undefined || original === null || typeof original !== 'object') return carrier;
  const out: IHeaders = {};
  for (const key of Object.keys(original)) {
    if (!isTraceKey(key)) out[key] = original[key];
  }
  return Object.assign(out, carrier);
}
