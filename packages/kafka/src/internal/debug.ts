import { debuglog } from 'node:util';

/** `NODE_DEBUG=cyb:kafka` shows why tracing stepped aside for a message. */
export const debug = debuglog('cyb:kafka');

let failures = 0;

/**
 * Tracing must never break the application, so every failure inside the wrappers lands here:
 * counted, logged, and the wrapped call goes on untraced.
 */
export function tracingFailed(where: string, error: unknown): void {
  failures++;
  debug('%s: tracing skipped: %o', where, error);
}

export function failureCount(): number {
  return failures;
}
