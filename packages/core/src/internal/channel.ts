import diagnostics_channel from 'node:diagnostics_channel';
import type { SpanRecord } from '../CybSpan.js';
import { debug } from './debug.js';

/** The tracing channel every span's start, end and error are published on. */
export const SPAN_CHANNEL = 'cyb:span';

export interface SpanMessage {
  span: SpanRecord;
  error?: unknown;
}

export const spanChannel = diagnostics_channel.tracingChannel<SpanMessage, SpanMessage>(SPAN_CHANNEL);
const startCh = spanChannel.start;
const endCh = spanChannel.end;
const errorCh = spanChannel.error;

/**
 * True when anything listens to span start, end or error; `span()` skips all work otherwise, and
 * middlewares may do the same.
 */
export function hasSpanSubscribers(): boolean {
  return startCh.hasSubscribers || endCh.hasSubscribers || errorCh.hasSubscribers;
}

// Subscribers registered through this package catch their own errors. The guards below only cover a
// publish that fails before reaching them; diagnostics_channel itself reports a throwing foreign
// subscriber on process.nextTick rather than to the publisher.
export function publishStart(span: SpanRecord): void {
  if (!startCh.hasSubscribers) return;
  try {
    startCh.publish({ span });
  } catch (err) {
    debug('span start subscriber failed: %o', err);
  }
}

export function publishEnd(span: SpanRecord): void {
  if (!endCh.hasSubscribers) return;
  try {
    endCh.publish({ span });
  } catch (err) {
    debug('span end subscriber failed: %o', err);
  }
}

export function publishError(span: SpanRecord, error: unknown): void {
  if (!errorCh.hasSubscribers) return;
  try {
    errorCh.publish({ span, error });
  } catch (err) {
    debug('span error subscriber failed: %o', err);
  }
}

/**
 * Calls `fn` with every finished span until the returned function is called.
 *
 * @example
 * const stop = onSpanEnd((span) => queue.push(span));
 */
export function onSpanEnd(fn: (span: SpanRecord) => void): () => void {
  const handler = (message: unknown): void => {
    try {
      fn((message as SpanMessage).span);
    } catch (err) {
      debug('onSpanEnd handler failed: %o', err);
    }
  };
  endCh.subscribe(handler);
  let active = true;
  return () => {
    if (!active) return;
    active = false;
    endCh.unsubscribe(handler);
  };
}

/** Like `onSpanEnd`, for span starts. */
export function onSpanStart(fn: (span: SpanRecord) => void): () => void {
  const handler = (message: unknown): void => {
    try {
      fn((message as SpanMessage).span);
    } catch (err) {
      debug('onSpanStart handler failed: %o', err);
    }
  };
  startCh.subscribe(handler);
  let active = true;
  return () => {
    if (!active) return;
    active = false;
    startCh.unsubscribe(handler);
  };
}
