import diagnostics_channel from 'node:diagnostics_channel';
import { SPAN_CHANNEL } from '@cyb/core';

// The channels of core's `cyb:span` tracing channel: a Collector, an exporter or any other consumer
// of finished spans subscribes to one of them.
const spanStart = diagnostics_channel.channel(`tracing:${SPAN_CHANNEL}:start`);
const spanEnd = diagnostics_channel.channel(`tracing:${SPAN_CHANNEL}:end`);
const spanError = diagnostics_channel.channel(`tracing:${SPAN_CHANNEL}:error`);

/** True when something would receive the spans this package makes. */
export function spansObserved(): boolean {
  return spanEnd.hasSubscribers || spanStart.hasSubscribers || spanError.hasSubscribers;
}

/** Set while `traceOutgoing()` runs: outgoing requests then need the server span's context. */
export const outgoing = { running: false };
