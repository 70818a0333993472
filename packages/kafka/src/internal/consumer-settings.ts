import { extract, type ExtractOptions } from '@cyb/core';
import type { KafkaMessage } from 'kafkajs';
import { baseAttributes, keyText, offsetValue, type Attributes } from './attributes.js';

/** What a traced consumer decided at setup, plus the group id once known. */
export interface ConsumerSettings {
  captureKey: boolean;
  maxBatchLinks: number;
  extract: ExtractOptions | undefined;
  /** From the options, else from the consumer's GROUP_JOIN event. */
  groupId: string | undefined;
}

/** The attributes of one message's `process <topic>` span. */
export function processAttributes(
  settings: ConsumerSettings,
  topic: string,
  partition: number,
  message: KafkaMessage,
): Attributes {
  const attributes = baseAttributes(topic, 'process');
  attributes['messaging.destination.partition.id'] = String(partition);
  if (typeof message.offset === 'string') attributes['messaging.kafka.offset'] = offsetValue(message.offset);
  if (settings.captureKey) {
    const key = keyText(message.key);
    if (key !== undefined) attributes['messaging.kafka.message.key'] = key;
  }
  if (message.value === null) attributes['messaging.kafka.message.tombstone'] = true;
  if (settings.groupId !== undefined) attributes['messaging.consumer.group.name'] = settings.groupId;
  return attributes;
}

export function extractFrom(settings: ConsumerSettings, message: KafkaMessage): ReturnType<typeof extract> {
  // kafkajs hands header values over as Buffers (arrays of them for repeated keys); core's default
  // getter reads both.
  return extract(message.headers, settings.extract);
}
