import { failures } from './internal/debug.js';

/** Process-wide counters of what tracing skipped so the application kept running. */
export interface VsmStats {
  /** Handlers registered without a declaration: native or eval'd code, or no inspector in this Node build. */
  locationFailures: number;
  /** Span, attribute or propagation steps that threw and were skipped. */
  tracingFailures: number;
}

/**
 * A copy of the counters; with `NODE_DEBUG=cyb:vsm` each event is also logged.
 *
 * @example
 * const { locationFailures } = vsmStats();
 * if (locationFailures > 0) console.warn('some VSM handlers have no code location');
 */
export function vsmStats(): VsmStats {
  return { locationFailures: failures.location, tracingFailures: failures.tracing };
}
