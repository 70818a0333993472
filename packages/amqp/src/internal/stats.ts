/** Counters shared by every traced channel in the process. */
export interface AmqpStats {
  /** Messages published through a traced channel. */
  published: number;
  /** Messages delivered by `consume` or returned by `get` to a traced channel. */
  received: number;
  /** Received messages without any trace header: each started a new trace. */
  missingContext: number;
  /** Received messages whose trace headers were present but unusable: each started a new trace. */
  malformedContext: number;
  /** Spans ended because no settle (or confirm) came within `settleTimeoutMs`. */
  settleTimeouts: number;
  /** Spans ended early because `maxPending` spans were already waiting. */
  pendingDropped: number;
  /** Spans ended with an error because the channel closed before the settle or confirm. */
  closedUnsettled: number;
  /** Tracing failures caught and swallowed; the channel call went ahead untraced. */
  errors: number;
}

export const stats: AmqpStats = {
  published: 0,
  received: 0,
  missingContext: 0,
  malformedContext: 0,
  settleTimeouts: 0,
  pendingDropped: 0,
  closedUnsettled: 0,
  errors: 0,
};
