import { currentSpan, withContext, type CybSpan } from '@cyb/core';

/** What a link needs: the span context of a remote parent, as `Span.spanContext()` returns it. */
export type SpanContextOf = ReturnType<CybSpan['spanContext']>;

/**
 * The span context carried by `ctx`, or undefined (a context with only baggage has none).
 * @cyb/core exposes the span of the active context only, so `ctx` is made active for the lookup.
 */
export function spanContextOf(ctx: Parameters<typeof withContext>[0]): SpanContextOf | undefined {
  return withContext(ctx, currentSpan)?.spanContext();
}
