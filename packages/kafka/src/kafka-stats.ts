import { failureCount } from './internal/debug.js';

/** Counters of @cyb/kafka itself. */
export interface KafkaStats {
  /** Times tracing failed and the call went on untraced (details under `NODE_DEBUG=cyb:kafka`). */
  tracingFailures: number;
}

/**
 * This process's @cyb/kafka counters.
 *
 * @example
 * if (kafkaStats().tracingFailures > 0) logger.warn('some Kafka messages went out untraced');
 */
export function kafkaStats(): KafkaStats {
  return { tracingFailures: failureCount() };
}
