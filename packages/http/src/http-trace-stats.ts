import { stats, type HttpTraceStats } from './internal/debug.js';

export type { HttpTraceStats } from './internal/debug.js';

/**
 * A copy of this package's counters: spans started, aborted requests, and the failures of tracing code
 * and user hooks that were swallowed so the application carried on.
 *
 * @example
 * const { internalErrors, hookErrors } = httpTraceStats();
 */
export function httpTraceStats(): HttpTraceStats {
  return { ...stats };
}
