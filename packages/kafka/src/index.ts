// Public entry of @cyb/kafka: kafkajs producers and consumers that carry trace context in message headers.

export { traceProducer } from './trace-producer.js';
export { traceConsumer } from './trace-consumer.js';
export { traceBatchMessage } from './trace-batch-message.js';
export { kafkaStats } from './kafka-stats.js';

// Types
export type { TraceProducerOptions } from './trace-producer.js';
export type { TraceConsumerOptions } from './trace-consumer.js';
export type { KafkaStats } from './kafka-stats.js';
