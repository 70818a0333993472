import { stats, type RedisTracingStats } from './internal/stats.js';

/**
 * A copy of the counters of tracing failures, malformed envelopes and stream consumer errors.
 *
 * @example
 * const { failures, malformedEnvelopes } = redisTracingStats();
 */
export function redisTracingStats(): RedisTracingStats {
  return { ...stats };
}
