import type { Batch, KafkaMessage } from 'kafkajs';
import { batchTraces } from './internal/BatchTrace.js';
import { tracingFailed } from './internal/debug.js';
import { runInContext } from './internal/run-in-span.js';

/**
 * Runs `fn`, the application's work on one message of a traced `eachBatch`, inside that message's
 * `process <topic>` span: a child of the message's producer, active while `fn` runs, so what `fn` sends
 * or calls continues the producer's trace. Returns `fn`'s result and rethrows its error unchanged.
 *
 * Without it, a batch handler runs inside the batch's `receive` span and each message's process span is
 * put together afterwards, timed from one `resolveOffset` to the next. With a batch that is not traced
 * (or a message not in it), `fn` is simply called.
 *
 * @example
 * await consumer.run({
 *   eachBatch: async ({ batch, resolveOffset, heartbeat }) => {
 *     for (const message of batch.messages) {
 *       await traceBatchMessage(batch, message, () => handle(message));
 *       resolveOffset(message.offset);
 *       await heartbeat();
 *     }
 *   },
 * });
 */
export function traceBatchMessage<T>(batch: Batch, message: KafkaMessage, fn: () => T): T {
  const trace = batchTraces.get(batch);
  if (trace === undefined) return fn();
  let started;
  try {
    const i = trace.indexOf(message);
    started = i < 0 ? undefined : trace.startProcess(i);
  } catch (err) {
    tracingFailed('traceBatchMessage', err);
  }
  if (started === undefined) return fn();
  const { span, context } = started;
  return runInContext(context, fn, (failure) => {
    if (failure) span.fail(failure.error);
    span.end();
    trace.workEnded(failure);
  });
}
