// @cyb/redis: trace context across ioredis streams and pub/sub, and optional command spans.

// Client
export { traceRedis, untraceRedis, isTraced } from './trace-redis.js';
export type { TraceRedisOptions, RedisClientLike, NameFilter } from './trace-redis.js';

// Streams
export { consumeStream } from './consume-stream.js';
export type { ConsumeStreamOptions, StreamConsumer, StreamEntry } from './consume-stream.js';
export { unwrapStreamFields } from './stream-fields.js';
export type { UnwrappedStreamFields } from './stream-fields.js';

// Pub/sub envelope
export { unwrapEnvelope, wrapEnvelope, MAX_ENVELOPE_HEADER } from './envelope.js';
export type { UnwrappedMessage, WrapEnvelopeOptions } from './envelope.js';

// Counters
export { redisTracingStats } from './stats.js';
export type { RedisTracingStats } from './internal/stats.js';
