import { extract, type ExtractOptions } from '@cyb/core';
import type { KafkaMessage } from 'kafkajs';
import { keyText, offsetValue, writeBaseAttributes, type SpanAttributes } from './attributes.js';

/** What a traced consumer decided at setup, plus the group id once known. */
export interface ConsumerSettings {
  captureKey: boolean;
  maxBatchLinks: number;
  extract: ExtractOptions | undefined;
  /** From the options, else from the consumer's GROUP_JOIN event. */
  groupId: string | undefined;
}

/** Writes the attributes of one message's `process <topic>` span into `target` (the span's own). */
export function writeProcessAttributes(
  target: SpanAttributes,
  settings: ConsumerSettings,
  topic: string,
  partition: number,
  message: KafkaMessage,
): void {
  writeBaseAttributes(target, topic, 'process');
  target['messaging.destination.partition.id'] = String(partition);
  if (typeof message.offset === 'string') target['messaging.kafka.offset'] = offsetValue(message.offset);
  if (settings.captureKey) {
    const key = keyText(message.key);
    if (key !== undefined) target['messaging.kafka.message.key'] = key;
  }
  if (message.value === null) target['messaging.kafka.message.tombstone'] = true;
  if (settings.groupId !== undefined) target['messaging.consumer.group.name'] = settings.groupId;
}

export function extractFrom(settings: ConsumerSettings, message: KafkaMessage): ReturnType<typeof extract> {
  // kafkajs hands header values over as Buffers (arrays of them for repeated keys); core's default
  // getter reads both.
  return extract(message.headers, settings.extract);
}
