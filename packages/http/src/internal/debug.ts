import { debuglog } from 'node:util';

/** Silent unless `NODE_DEBUG=cyb:http`. */
export const debug = debuglog('cyb:http');

/** Counters of what the package did and of the failures it swallowed. */
export interface HttpTraceStats {
  /** SERVER spans started by `traceHttp()`. */
  serverSpans: number;
  /** SERVER spans ended because the client went away before the response finished. */
  aborted: number;
  /** CLIENT spans started for outgoing requests. */
  clientSpans: number;
  /** Outgoing requests whose trace headers the caller had set, left as they were. */
  callerHeadersKept: number;
  /** Outgoing requests whose headers were already on the wire, so nothing could be injected. */
  headersTooLate: number;
  /** User hooks (`spanName`, `ignore`) that threw; the default was used instead. */
  hookErrors: number;
  /** Failures inside the tracing code itself, swallowed so the host carries on. */
  internalErrors: number;
}

export const stats: HttpTraceStats = {
  serverSpans: 0,
  aborted: 0,
  clientSpans: 0,
  callerHeadersKept: 0,
  headersTooLate: 0,
  hookErrors: 0,
  internalErrors: 0,
};

/** Counts and logs a failure of the tracing code; the host's work goes on. */
export function internalError(where: string, err: unknown): void {
  stats.internalErrors++;
  debug('%s failed: %o', where, err);
}

/** Counts and logs a user hook that threw. */
export function hookError(hook: string, err: unknown): void {
  stats.hookErrors++;
  debug('option %s threw; using the default: %o', hook, err);
}
