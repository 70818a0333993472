import { debug } from './debug.js';

/** Counters of what the Redis tracing did besides its normal work. */
export interface RedisTracingStats {
  /** Failures inside the tracing code, swallowed so the command or listener went ahead untraced. */
  failures: number;
  /** Received messages that start like an envelope but are not a well-formed one: passed through untouched. */
  malformedEnvelopes: number;
  /** Errors of a stream consumer's handler, reported to `onError`. */
  handlerErrors: number;
  /** Errors of a stream consumer's own Redis commands (read, ack, group creation). */
  consumerErrors: number;
}

export const stats: RedisTracingStats = {
  failures: 0,
  malformedEnvelopes: 0,
  handlerErrors: 0,
  consumerErrors: 0,
};

/** Counts and logs a failure of the tracing code itself. */
export function tracingFailed(where: string, error: unknown): void {
  stats.failures++;
  debug('tracing failed in %s: %o', where, error);
}
