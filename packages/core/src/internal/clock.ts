import { performance } from 'node:perf_hooks';

const origin = performance.timeOrigin;

/**
 * Microseconds since the epoch, from the monotonic clock anchored at process start: a span's start
 * and end are both read here, so its duration never goes backwards with the wall clock.
 */
export function nowUs(): number {
  return Math.round((origin + performance.now()) * 1000);
}
