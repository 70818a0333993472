import { span, spanChannel } from '@cyb/core';
import { collectHandlers } from './internal/collect-handlers.js';
import { debug, failures } from './internal/debug.js';
import { payloadSize } from './internal/payload-size.js';
import type { AnyFunction } from './internal/types.js';
import { locateAll, unlocated, type FunctionLocation } from './locate-function.js';
import { UnknownOperationError, UnknownSystemError } from './UnknownOperationError.js';

/** Extra data that travels beside a payload: a correlation id, the caller, the AMQP message fields. */
export type VsmMeta = Readonly<Record<string, unknown>>;

/**
 * Sends an operation to another system. `vsm.dispatch` sends in-process; `consumeVsm` sends over the
 * broker. Either way the new work joins the current trace.
 */
export type VsmSend = (system: string, operation: string, payload: unknown, meta?: VsmMeta) => Promise<unknown>;

/** What a handler receives beside its payload. */
export interface DispatchContext {
  readonly system: string;
  readonly operation: string;
  readonly meta: VsmMeta;
  /**
   * Hands work to another system and joins it to this trace.
   *
   * @example
   * await ctx.send('s2', 'coordinate', { orderId });
   */
  readonly send: VsmSend;
}

/**
 * A handler for one operation of one system. `this` is the object or class it was registered from.
 *
 * @example
 * export async function handleOperation(payload: Order, ctx: DispatchContext): Promise<Receipt> { ... }
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type VsmHandler<P = any, R = unknown> = (payload: P, context: DispatchContext) => R | PromiseLike<R>;

/** Options of `createVsm()`. */
export interface VsmOptions {
  /** Project root that handler paths are relative to; default: the nearest directory whose package.json has `workspaces`. */
  root?: string;
  /**
   * Record each handler's declaration (module, function, arity, file, line) on its spans. Found once,
   * at `system()`. Default true.
   */
  locate?: boolean;
  /** The `vsm.payload.size` attribute: true (bytes, as JSON for objects), false, or your own measure. */
  payloadSize?: boolean | ((payload: unknown) => number | undefined);
}

/** Options of one `dispatch()`, for transports. */
export interface DispatchOptions {
  /** How the handler's `ctx.send` reaches other systems; default: an in-process `dispatch`. */
  send?: VsmSend;
  /** The payload's size in bytes when the caller knows it already (a message body), so it is not measured again. */
  payloadSize?: number;
}

/** A registered operation and where its handler is declared. */
export interface RegisteredOperation {
  system: string;
  operation: string;
  code: FunctionLocation;
}

/** A traced dispatch table for the systems of a Viable System Model. */
export interface Vsm {
  /**
   * Registers the operations of one system: a plain object of functions, a class instance (its
   * methods) or a class (its static methods). Each handler's declaration is located here, once.
   * Throws a TypeError for a duplicate operation or something that is not a handler.
   */
  system(name: string, handlers: object): Vsm;
  /**
   * Picks the handler for `operation` of `system` at run time and runs it inside the span
   * `vsm.<system> <operation>`, which carries the handler's code location. Rejects with
   * `UnknownOperationError` (or `UnknownSystemError`), recorded on an error span, when none is registered.
   */
  dispatch<R = unknown>(system: string, operation: string, payload?: unknown, meta?: VsmMeta, options?: DispatchOptions): Promise<R>;
  /** True when `system` is registered and, if given, has `operation`. */
  has(system: string, operation?: string): boolean;
  /** Every registered operation with its handler's location, in registration order. */
  operations(): RegisteredOperation[];
}

interface Entry {
  fn: AnyFunction;
  thisArg: unknown;
  spanName: string;
  code: FunctionLocation | undefined;
  registered: RegisteredOperation;
}

// `span()` skips all recording with no subscriber; measuring the payload is skipped then too.
function recording(): boolean {
  return spanChannel.start.hasSubscribers || spanChannel.end.hasSubscribers || spanChannel.error.hasSubscribers;
}

const EMPTY_META: VsmMeta = Object.freeze({});

/**
 * Creates a VSM dispatch table. Handlers are chosen by name at run time, which a static call graph
 * cannot follow; each dispatch span names the handler that ran, so the edge shows up in the trace.
 *
 * @example
 * import { createVsm } from '@cyb/vsm';
 * import { handleOperation, checkStatus } from './s1-handlers.js';
 *
 * const vsm = createVsm()
 *   .system('s1', { operation: handleOperation, status: checkStatus })
 *   .system('s2', new Coordinator());
 * const receipt = await vsm.dispatch('s1', 'operation', { orderId: 7 }, { requestId });
 */
export function createVsm(options: VsmOptions = {}): Vsm {
  const { root, locate = true, payloadSize: sizeOption = true } = options;
  const measure = sizeOption === true ? payloadSize : typeof sizeOption === 'function' ? sizeOption : undefined;
  const systems = new Map<string, Map<string, Entry>>();
  const order: RegisteredOperation[] = [];

  function attributesFor(system: string, operation: string, payload: unknown, known?: number): Record<string, string | number> {
    const attributes: Record<string, string | number> = { 'vsm.system': system, 'vsm.operation': operation };
    if (measure !== undefined && recording()) {
      try {
        const size = known ?? measure(payload);
        if (typeof size === 'number' && Number.isFinite(size)) attributes['vsm.payload.size'] = size;
      } catch (err) {
        failures.tracing++;
        debug('payload size failed: %o', err);
      }
    }
    return attributes;
  }

  const vsm: Vsm = {
    system(name, handlers) {
      if (typeof name !== 'string' || name === '') throw new TypeError('vsm.system: name must be a non-empty string');
      const found = collectHandlers(name, handlers);
      const table = systems.get(name) ?? new Map<string, Entry>();
      for (const h of found) {
        if (table.has(h.operation)) throw new TypeError(`vsm.system('${name}'): operation "${h.operation}" is already registered`);
      }
      const requests = found.map((h) => ({ fn: h.fn, className: h.className }));
      const codes = locate ? locateAll(requests, root) : requests.map(unlocated);
      found.forEach((h, i) => {
        const code = codes[i] as FunctionLocation;
        const registered: RegisteredOperation = { system: name, operation: h.operation, code };
        table.set(h.operation, {
          fn: h.fn,
          thisArg: handlers,
          spanName: `vsm.${name} ${h.operation}`,
          code: Object.freeze({ ...code }),
          registered,
        });
        order.push(registered);
      });
      systems.set(name, table);
      return vsm;
    },

    dispatch<R>(system: string, operation: string, payload?: unknown, meta: VsmMeta = EMPTY_META, opts: DispatchOptions = {}): Promise<R> {
      const sys = String(system);
      const op = String(operation);
      const table = systems.get(sys);
      const entry = table?.get(op);
      if (entry === undefined) {
        const error = table === undefined ? new UnknownSystemError(sys, op) : new UnknownOperationError(sys, op);
        try {
          const attributes = attributesFor(sys, op, payload, opts.payloadSize);
          attributes['error.type'] = error.name;
          span(`vsm.${sys} ${op}`, { attributes }, () => {
            throw error;
          });
        } catch (thrown) {
          if (thrown !== error) {
            failures.tracing++;
            debug('recording an unknown operation failed: %o', thrown);
          }
        }
        return Promise.reject(error);
      }
      const context: DispatchContext = {
        system: sys,
        operation: op,
        meta,
        send: opts.send ?? ((s, o, p, m) => vsm.dispatch(s, o, p, m)),
      };
      try {
        const result = span(entry.spanName, { attributes: attributesFor(sys, op, payload, opts.payloadSize), code: entry.code }, () =>
          (entry.fn as (this: unknown, payload: unknown, context: DispatchContext) => unknown).call(entry.thisArg, payload, context),
        );
        return Promise.resolve(result as R | PromiseLike<R>);
      } catch (err) {
        return Promise.reject(err);
      }
    },

    has(system, operation) {
      const table = systems.get(system);
      return table !== undefined && (operation === undefined || table.has(operation));
    },

    operations() {
      return order.map((r) => ({ ...r, code: { ...r.code } }));
    },
  };
  return vsm;
}
