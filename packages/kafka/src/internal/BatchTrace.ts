import { contextWithSpan, startSpan, type CybSpan } from '@cyb/core';
import type { Batch, KafkaMessage } from 'kafkajs';
import { compareOffsets, spanName } from './attributes.js';
import { nowMs } from './clock.js';
import { writeProcessAttributes, type ConsumerSettings } from './consumer-settings.js';
import { tracingFailed } from './debug.js';

type Context = NonNullable<Parameters<typeof contextWithSpan>[1]>;

/** The traced batches in flight, by the kafkajs `Batch` object the handler was given. */
export const batchTraces = new WeakMap<Batch, BatchTrace>();

/**
 * The tracing state of one `eachBatch` call: the receive span, each message's extracted parent, and which
 * messages have had their `process` span.
 *
 * A message's process span is created when its processing is known to be over, with its start put back
 * to when that processing began (one message after another, as a batch handler works):
 * - `resolveOffset(o)` closes every message up to `o`: their spans run from the previous resolve (or the
 *   start of the batch) to now, so a loop that resolves each message gets one span per iteration, and a
 *   handler that resolves the whole batch at once gives every message the batch's time;
 * - `traceBatchMessage` gives a message a live span instead, active while the application works on it;
 * - when the handler returns, what is left is closed the same way if kafkajs resolves it
 *   (`eachBatchAutoResolve`, the default); when the handler throws, the first message not yet closed gets an
 *   error span and the rest none, since kafkajs will deliver them again.
 */
export class BatchTrace {
  readonly receive: CybSpan;
  readonly receiveContext: Context;
  readonly #settings: ConsumerSettings;
  readonly #topic: string;
  readonly #partition: number;
  readonly #messages: readonly KafkaMessage[];
  readonly #parents: readonly (Context | undefined)[];
  /** Messages whose process span exists (closed or live). */
  readonly #done: Uint8Array;
  /** Every message before this index is done. */
  #cursor = 0;
  /** When the work on the next message began, epoch ms. */
  #mark: number;
  /** The error a live span already recorded, so the handler rethrowing it does not blame another message. */
  #recorded: unknown = undefined;
  /** Where `traceBatchMessage` last found a message, to make in-order lookups O(1). */
  #hint = 0;

  constructor(
    settings: ConsumerSettings,
    batch: Batch,
    receive: CybSpan,
    parents: readonly (Context | undefined)[],
    startMs: number,
  ) {
    this.#settings = settings;
    this.#topic = batch.topic;
    this.#partition = batch.partition;
    this.#messages = batch.messages;
    this.#parents = parents;
    this.#done = new Uint8Array(batch.messages.length);
    this.#mark = startMs;
    this.receive = receive;
    this.receiveContext = contextWithSpan(receive);
  }

  /** The index of `message` in the batch, or -1. */
  indexOf(message: KafkaMessage): number {
    const messages = this.#messages;
    if (messages[this.#hint] === message) return this.#hint;
    if (messages[this.#hint + 1] === message) return ++this.#hint;
    const i = messages.indexOf(message);
    if (i >= 0) this.#hint = i;
    return i;
  }

  /**
   * Starts the span of message `i` now, or returns undefined when it already has one.
   * The parent is the message's producer; a message without trace headers is processed within the
   * receive span's trace, and every other one links back to the receive span.
   */
  startProcess(i: number, startTime?: number): { span: CybSpan; context: Context } | undefined {
    if (this.#done[i] === 1) return undefined;
    this.#done[i] = 1;
    const message = this.#messages[i]!;
    const parent = this.#parents[i];
    const span = startSpan(spanName('process', this.#topic), {
      kind: 'consumer',
      parent: parent ?? this.receiveContext,
      links: parent === undefined ? undefined : [{ context: this.receive.spanContext() }],
      startTime,
    });
    writeProcessAttributes(span.attributes, this.#settings, this.#topic, this.#partition, message);
    return { span, context: contextWithSpan(span, parent ?? this.receiveContext) };
  }

  /** Marks the end of the work on one message, so the next closed span starts here. */
  workEnded(failure?: { error: unknown }): void {
    this.#mark = nowMs();
    if (failure) this.#recorded = failure.error;
  }

  /** Closes every message with an offset up to `offset` (the application resolved it). */
  resolve(offset: string): void {
    const end = nowMs();
    const messages = this.#messages;
    while (this.#cursor < messages.length && compareOffsets(messages[this.#cursor]!.offset, offset) <= 0) {
      this.#close(this.#cursor, end);
      this.#cursor++;
    }
    this.#mark = end;
  }

  /** The handler settled: closes what kafkajs will now resolve, or records the failure. */
  finish(failure: { error: unknown } | undefined, autoResolve: boolean): void {
    const end = nowMs();
    const messages = this.#messages;
    for (; this.#cursor < messages.length; this.#cursor++) {
      if (this.#done[this.#cursor] === 1) continue;
      if (failure) {
        if (failure.error !== this.#recorded) this.#close(this.#cursor, end, failure);
        break;
      }
      if (!autoResolve) break;
      this.#close(this.#cursor, end);
    }
  }

  #close(i: number, endMs: number, failure?: { error: unknown }): void {
    try {
      const started = this.startProcess(i, this.#mark);
      if (started === undefined) return;
      if (failure) started.span.fail(failure.error);
      started.span.end(endMs);
    } catch (err) {
      tracingFailed('batch message span', err);
    }
  }
}
