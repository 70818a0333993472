// Dispatch
export { createVsm } from './create-vsm.js';
export type {
  DispatchContext,
  DispatchOptions,
  RegisteredOperation,
  Vsm,
  VsmHandler,
  VsmMeta,
  VsmOptions,
  VsmSend,
} from './create-vsm.js';
export { UnknownOperationError, UnknownSystemError } from './UnknownOperationError.js';
export { vsmStats } from './vsm-stats.js';
export type { VsmStats } from './vsm-stats.js';

// Code locations
export { locateFunction } from './locate-function.js';
export type { FunctionLocation, LocateOptions } from './locate-function.js';

// AMQP consumer
export { consumeVsm } from './consume-vsm.js';
export type { ConsumeVsmOptions, VsmConsumer, VsmRoute, VsmSettle } from './consume-vsm.js';

// State bridge
export { createBridge } from './create-bridge.js';
export type { Bridge, BridgeOptions, BridgeRedis, BridgeStats, PulledState, PushOptions, PushResult } from './create-bridge.js';
export { StateConflictError } from './StateConflictError.js';
export type { StateConflict, StoredStateInfo } from './StateConflictError.js';
