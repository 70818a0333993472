import { withContext, type CybSpan } from '@cyb/core';
import { tracingFailed } from './debug.js';

type Context = Parameters<typeof withContext>[0];

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    value !== null &&
    (typeof value === 'object' || typeof value === 'function') &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}

/**
 * Runs `fn` with `ctx` active and calls `settled` once its work is over, with the failure if it threw or
 * rejected. The caller gets `fn`'s own return value, the same promise object included, and its own error.
 */
export function runInContext<T>(ctx: Context, fn: () => T, settled: (failure?: { error: unknown }) => void): T {
  const done = (failure?: { error: unknown }): void => {
    try {
      settled(failure);
    } catch (err) {
      tracingFailed('end span', err);
    }
  };
  let result: T;
  try {
    result = withContext(ctx, fn);
  } catch (error) {
    done({ error });
    throw error;
  }
  if (isThenable(result)) {
    // Registered before the caller awaits, so the span ends before kafkajs moves on to the next message.
    result.then(
      () => done(),
      (error: unknown) => done({ error }),
    );
  } else {
    done();
  }
  return result;
}

/** `runInContext` for one span: the failure is recorded on it and it is ended. */
export function runInSpan<T>(span: CybSpan, ctx: Context, fn: () => T): T {
  return runInContext(ctx, fn, (failure) => {
    if (failure) span.fail(failure.error);
    span.end();
  });
}
