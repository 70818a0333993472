import { performance } from 'node:perf_hooks';

const origin = performance.timeOrigin;

/** Microseconds since the epoch, from the monotonic clock anchored at process start. */
export function nowUs(): number {
  return Math.round((origin + performance.now()) * 1000);
}

/** Monotonic milliseconds, for durations. */
export function monotonicMs(): number {
  return performance.now();
}

/** Microseconds since the epoch for a value of `monotonicMs()`. */
export function epochUs(monotonic: number): number {
  return Math.round((origin + monotonic) * 1000);
}
