import { contextWithSpan, currentSpan, startSpan, withContext, type CybSpan } from '@cyb/core';
import { unwrapEnvelope, wrapEnvelope } from './envelope.js';
import { consumerSpec, producerSpec, serverInfo, writeAttributes, writeServerAttributes, type ServerInfo } from './internal/attributes.js';
import { debug } from './internal/debug.js';
import { tracingFailed } from './internal/stats.js';
import { text } from './internal/text.js';
import { injectFields, traceFieldName } from './internal/trace-fields.js';
import { xaddFieldStart } from './internal/xadd.js';

/** Decides per stream or channel name; a throw counts as `false`. */
export type NameFilter = (name: string) => boolean;

export interface TraceRedisOptions {
  /**
   * Append trace fields to entries written with XADD and trace them with a PRODUCER span
   * (default `true`). A function picks streams by name.
   */
  streams?: boolean | NameFilter;
  /**
   * Wrap PUBLISH / SPUBLISH payloads in an envelope with a PRODUCER span, and unwrap received messages
   * for `message`, `pmessage` and `smessage` listeners (and their `*Buffer` forms) in a CONSUMER span
   * (default `true`). A function picks channels by name.
   */
  pubsub?: boolean | NameFilter;
  /** One CLIENT span per command, named after the command, never with its arguments (default `false`). */
  commandSpans?: boolean;
  /**
   * With `commandSpans`, also record commands issued outside any span (connection handshake, timers),
   * each as the root of its own trace (default `false`).
   */
  rootCommandSpans?: boolean;
}

/**
 * The part of an ioredis client (`Redis` of ioredis 5 or 6) that tracing hooks into. `sendCommand` and
 * `emit` are per-instance hooks; nothing on the prototype is touched.
 */
export interface RedisClientLike {
  emit(event: string | symbol, ...args: any[]): boolean; // eslint-disable-line @typescript-eslint/no-explicit-any
  listenerCount(event: string | symbol): number;
  duplicate(...args: any[]): unknown; // eslint-disable-line @typescript-eslint/no-explicit-any
}

/** An ioredis Command, as far as tracing reads and writes it. */
interface CommandLike {
  name: string;
  args: unknown[];
  resolve(value: unknown): unknown;
  reject(error: unknown): unknown;
  [SEEN]?: true;
}

type AnyFunction = (...args: unknown[]) => unknown;

interface State {
  active: boolean;
  options: TraceRedisOptions;
  streams: NameFilter | undefined;
  pubsub: NameFilter | undefined;
  commandSpans: boolean;
  rootCommandSpans: boolean;
  server: ServerInfo;
  /** Hooks set on the client, with the own property each replaced (undefined: none). */
  saved: Map<string, { hook: unknown; before: PropertyDescriptor | undefined }>;
}

const STATE = Symbol('cyb.redis.state');
const SEEN = Symbol('cyb.redis.seen');
const ALWAYS: NameFilter = () => true;

type Traced = RedisClientLike & { [STATE]?: State };

function filterOf(option: boolean | NameFilter | undefined): NameFilter | undefined {
  if (option === undefined || option === true) return ALWAYS;
  if (option === false) return undefined;
  if (typeof option === 'function') return option;
  throw new TypeError('streams and pubsub must be a boolean or a function');
}

function allowed(filter: NameFilter, name: string): boolean {
  if (filter === ALWAYS) return true;
  try {
    return filter(name) === true;
  } catch (error) {
    tracingFailed('name filter', error);
    return false;
  }
}

// Command names as ioredis builds them are lower case (`xadd`); `call('XADD', ...)` keeps the caller's case.
const XADD = 1;
const PUBLISH = 2;
function messagingKind(name: string): number {
  switch (name) {
    case 'xadd':
    case 'XADD':
      return XADD;
    case 'publish':
    case 'spublish':
    case 'PUBLISH':
    case 'SPUBLISH':
      return PUBLISH;
  }
  if (name.length === 4 || name.length === 7 || name.length === 8) {
    const lower = name.toLowerCase();
    if (lower === 'xadd') return XADD;
    if (lower === 'publish' || lower === 'spublish') return PUBLISH;
  }
  return 0;
}

const upperNames = new Map<string, string>();
function upperName(name: string): string {
  let upper = upperNames.get(name);
  if (upper === undefined) {
    upper = name.toUpperCase();
    // Names come from a finite command table, but `call()` takes any string: keep the cache bounded.
    if (upperNames.size < 512) upperNames.set(name, upper);
  }
  return upper;
}

/** Starts the PRODUCER span of an XADD and appends the trace fields to its arguments. */
function traceXadd(state: State, command: CommandLike): CybSpan | undefined {
  const args = command.args;
  const stream = text(args[0]);
  if (state.streams === undefined || !allowed(state.streams, stream)) return undefined;
  const spec = producerSpec('send', 'xadd', stream);
  const span = startSpan(spec.name, { kind: 'producer' });
  writeAttributes(span.attributes, spec);
  const start = xaddFieldStart(args);
  // A malformed XADD is left exactly as written, so Redis rejects it as it would without tracing.
  // Fields the application set itself (it propagates by hand) are not overwritten.
  if (start < 0) return span;
  for (let i = start; i < args.length; i += 2) {
    if (traceFieldName(text(args[i])) !== undefined) return span;
  }
  const fields = injectFields(contextWithSpan(span));
  for (const name of Object.keys(fields)) args.push(name, fields[name]);
  return span;
}

/** Starts the PRODUCER span of a PUBLISH / SPUBLISH and wraps its payload in an envelope. */
function tracePublish(state: State, command: CommandLike): CybSpan | undefined {
  const args = command.args;
  const channel = text(args[0]);
  if (state.pubsub === undefined || !allowed(state.pubsub, channel)) return undefined;
  const operation = command.name.length === 7 ? 'publish' : 'spublish';
  const spec = producerSpec(operation, operation, channel);
  const span = startSpan(spec.name, { kind: 'producer' });
  writeAttributes(span.attributes, spec);
  const payload = args[1];
  if (args.length === 2 && (typeof payload === 'string' || Buffer.isBuffer(payload))) {
    args[1] = wrapEnvelope(payload, { context: contextWithSpan(span) });
  }
  return span;
}

/** Ends the spans when ioredis settles the command, without touching the promise the caller holds. */
function observe(command: CommandLike, producer: CybSpan | undefined, client: CybSpan | undefined, xadd: boolean): void {
  const resolve = command.resolve;
  const reject = command.reject;
  let settled = false;
  command.resolve = (value: unknown) => {
    if (!settled) {
      settled = true;
      try {
        if (xadd && producer !== undefined && (typeof value === 'string' || Buffer.isBuffer(value))) {
          const id = value.toString();
          // Inside MULTI the reply is QUEUED; the id only exists in EXEC's reply.
          if (id !== 'QUEUED') producer.setAttribute('messaging.message.id', id);
        }
        client?.end();
        producer?.end();
      } catch (error) {
        tracingFailed('command reply', error);
      }
    }
    return resolve(value);
  };
  command.reject = (error: unknown) => {
    if (!settled) {
      settled = true;
      try {
        client?.fail(error);
        client?.end();
        producer?.fail(error);
        producer?.end();
      } catch (failure) {
        tracingFailed('command error', failure);
      }
    }
    return reject(error);
  };
}

function instrument(state: State, command: CommandLike): void {
  if (command === null || typeof command !== 'object' || typeof command.name !== 'string' || !Array.isArray(command.args)) return;
  if (command[SEEN] === true) return;
  const kind = messagingKind(command.name);
  if (kind === 0 && !state.commandSpans) return;
  // A command can pass through sendCommand more than once (pipeline flush, offline queue, resend after
  // a reconnect); it is traced, and its arguments changed, only the first time.
  command[SEEN] = true;
  let producer: CybSpan | undefined;
  if (kind === XADD) producer = traceXadd(state, command);
  else if (kind === PUBLISH) producer = tracePublish(state, command);
  let client: CybSpan | undefined;
  // Under a PRODUCER span the command always has a parent; otherwise only inside a span, unless roots are wanted.
  if (state.commandSpans && (producer !== undefined || state.rootCommandSpans || currentSpan() !== undefined)) {
    const operation = upperName(command.name);
    client = startSpan(operation, { kind: 'client', parent: producer === undefined ? undefined : contextWithSpan(producer) });
    writeServerAttributes(client.attributes, state.server, operation);
  }
  if (producer !== undefined || client !== undefined) observe(command, producer, client, kind === XADD);
}

function instrumentSafely(state: State, command: CommandLike): void {
  try {
    instrument(state, command);
  } catch (error) {
    tracingFailed('sendCommand', error);
  }
}

/** Hooks a Pipeline (explicit, MULTI or auto-pipelining) so commands are traced when queued, in the caller's context. */
function tracePipeline(state: State, pipeline: unknown): void {
  if (pipeline === null || typeof pipeline !== 'object') return;
  const target = pipeline as { sendCommand?: unknown };
  const original = target.sendCommand;
  if (typeof original !== 'function' || Object.hasOwn(target, 'sendCommand')) return;
  target.sendCommand = function sendCommand(this: unknown, ...args: [CommandLike, ...unknown[]]): unknown {
    if (state.active) instrumentSafely(state, args[0]);
    return Reflect.apply(original, this, args);
  };
}

// Events whose arguments end with (channel, message); the pattern events start with the pattern.
function channelIndex(event: unknown): number {
  switch (event) {
    case 'message':
    case 'messageBuffer':
    case 'smessage':
    case 'smessageBuffer':
      return 1;
    case 'pmessage':
    case 'pmessageBuffer':
      return 2;
    default:
      return -1;
  }
}

/** Delivers one pub/sub event to its listeners: envelope removed, inside a CONSUMER span. */
function deliver(state: State, client: Traced, emit: AnyFunction, args: unknown[], index: number): boolean {
  let span: CybSpan;
  let context;
  try {
    const channel = text(args[index]);
    if (!allowed(state.pubsub!, channel)) return Reflect.apply(emit, client, args) as boolean;
    const message = args[index + 1];
    let parent;
    if (typeof message === 'string' || Buffer.isBuffer(message)) {
      const unwrapped = unwrapEnvelope(message);
      // `args` is this call's own array (emit's rest parameter): the payload can replace the envelope in place.
      if (unwrapped.enveloped) args[index + 1] = unwrapped.payload;
      parent = unwrapped.context;
    }
    // A pattern is the low-cardinality name of what was subscribed to, so it names the span.
    const spec = consumerSpec(channel, index === 2 ? text(args[1]) : undefined);
    span = startSpan(spec.name, { kind: 'consumer', parent: parent ?? null });
    writeAttributes(span.attributes, spec);
    context = contextWithSpan(span, parent);
  } catch (error) {
    tracingFailed('pub/sub delivery', error);
    return Reflect.apply(emit, client, args) as boolean;
  }
  try {
    return withContext(context, () => Reflect.apply(emit, client, args) as boolean);
  } catch (error) {
    // A listener's throw leaves emit() exactly as it would untraced: recorded, then rethrown unchanged.
    span.fail(error);
    throw error;
  } finally {
    span.end();
  }
}

function replace(client: Traced, state: State, name: string, value: unknown): void {
  state.saved.set(name, { hook: value, before: Object.getOwnPropertyDescriptor(client, name) });
  Object.defineProperty(client, name, { value, writable: true, configurable: true, enumerable: false });
}

function normalize(options: TraceRedisOptions, server: ServerInfo): State {
  if (options === null || typeof options !== 'object') throw new TypeError('traceRedis options must be an object');
  return {
    active: true,
    options: { ...options },
    streams: filterOf(options.streams),
    pubsub: filterOf(options.pubsub),
    commandSpans: options.commandSpans === true,
    rootCommandSpans: options.rootCommandSpans === true,
    server,
    saved: new Map(),
  };
}

/**
 * Traces an ioredis client in place and returns it, its API unchanged:
 * - XADD appends the trace fields (`traceparent`, `tracestate`, `b3`) to the entry, in a PRODUCER span `send <stream>`;
 * - PUBLISH / SPUBLISH wrap the payload in an envelope (see `unwrapEnvelope`), in a PRODUCER span `publish <channel>`;
 * - `message` / `pmessage` / `smessage` listeners (and `*Buffer`) receive the original payload and run in
 *   the producer's context, inside a CONSUMER span `process <channel or pattern>`; other messages pass untouched;
 * - with `commandSpans`, every command gets a CLIENT span with `db.system.name` and `db.operation.name`.
 * `duplicate()` returns a client traced the same way. Tracing a traced client again returns it as it is.
 *
 * @example
 * const redis = traceRedis(new Redis(process.env.REDIS_URL));
 * const sub = redis.duplicate();
 * sub.on('message', (channel, message) => handle(message)); // runs in the publisher's trace
 * await sub.subscribe('orders');
 * await redis.publish('orders', JSON.stringify(order));
 * await redis.xadd('audit', '*', 'event', 'order-placed');
 */
export function traceRedis<T extends RedisClientLike>(client: T, options: TraceRedisOptions = {}): T {
  if (client === null || typeof client !== 'object' || typeof (client as unknown as { sendCommand?: unknown }).sendCommand !== 'function') {
    throw new TypeError('traceRedis expects an ioredis client');
  }
  const traced = client as Traced;
  const existing = traced[STATE];
  if (existing?.active) {
    debug('client already traced; the new options are ignored');
    return client;
  }
  const state = normalize(options, serverInfo((client as unknown as { options?: unknown }).options));
  const record = client as unknown as Record<string, AnyFunction>;

  const sendCommand = record.sendCommand!;
  replace(traced, state, 'sendCommand', function sendCommand_(this: unknown, ...args: [CommandLike, ...unknown[]]): unknown {
    if (state.active) instrumentSafely(state, args[0]);
    // Whatever else ioredis passes (stream, node) goes on unchanged.
    return Reflect.apply(sendCommand, this, args);
  });

  for (const name of ['pipeline', 'multi'] as const) {
    const original = record[name];
    if (typeof original !== 'function') continue;
    replace(traced, state, name, function pipeline(this: unknown, ...args: unknown[]): unknown {
      const result = Reflect.apply(original, this, args);
      // multi({ pipeline: false }) returns the promise of MULTI, not a pipeline.
      if (state.active) tracePipeline(state, result);
      return result;
    });
  }

  const duplicate = record.duplicate!;
  replace(traced, state, 'duplicate', function duplicate_(this: unknown, ...args: unknown[]): unknown {
    const copy = Reflect.apply(duplicate, this, args);
    if (state.active) {
      try {
        traceRedis(copy as RedisClientLike, state.options);
      } catch (error) {
        tracingFailed('duplicate', error);
      }
    }
    return copy;
  });

  if (state.pubsub !== undefined) {
    const emit = record.emit!;
    replace(traced, state, 'emit', function emit_(this: Traced, ...args: [string | symbol, ...unknown[]]): boolean {
      const index = channelIndex(args[0]);
      if (index < 0 || !state.active || this.listenerCount(args[0]) === 0) return Reflect.apply(emit, this, args) as boolean;
      return deliver(state, this, emit, args, index);
    });
  }

  Object.defineProperty(traced, STATE, { value: state, writable: true, configurable: true, enumerable: false });
  return client;
}

/**
 * Undoes `traceRedis` on one client: its hooks are removed (or turned into pass-throughs when something
 * else wrapped them since). Clients made by `duplicate()` stay traced.
 *
 * @example
 * untraceRedis(redis);
 */
export function untraceRedis(client: RedisClientLike): void {
  const traced = client as Traced;
  const state = traced[STATE];
  if (state === undefined || !state.active) return;
  state.active = false;
  for (const [name, { hook, before }] of state.saved) {
    // Only remove a hook still in place; one something else wrapped since stays, as a pass-through.
    if (Object.getOwnPropertyDescriptor(traced, name)?.value !== hook) continue;
    if (before === undefined) delete (traced as unknown as Record<string, unknown>)[name];
    else Object.defineProperty(traced, name, before);
  }
  delete traced[STATE];
}

/**
 * True when `client` is currently traced by `traceRedis`.
 *
 * @example
 * if (!isTraced(redis)) traceRedis(redis);
 */
export function isTraced(client: RedisClientLike): boolean {
  return (client as Traced)[STATE]?.active === true;
}
