import { hasSpanSubscribers } from '@cyb/core';

/** True when something would receive the spans this package makes (a Collector, an exporter). */
export const spansObserved = hasSpanSubscribers;

/** Set while `traceOutgoing()` runs: outgoing requests then need the server span's context. */
export const outgoing = { running: false };
