import { performance } from 'node:perf_hooks';

const origin = performance.timeOrigin;

/**
 * Epoch milliseconds with sub-millisecond precision, on the same monotonic base as @cyb/core's span
 * timestamps, for spans whose start lies in the past (batch messages are timed after the fact).
 */
export function nowMs(): number {
  return origin + performance.now();
}
