// @cyb/amqp: trace context for amqplib channels.

export { traceChannel, messageContext, amqpStats } from './trace-channel.js';

// Types
export type { TraceChannelOptions, AmqpChannelLike } from './trace-channel.js';
export type { AmqpStats } from './internal/stats.js';
