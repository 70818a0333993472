import { span, type CodeLocation } from '@cyb/core';
import { locateFunction } from '@cyb/vsm';
import { DEMO_ROOT } from './config.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyFunction = (...args: any[]) => unknown;

/**
 * Runs a handler (a route, a Kafka `eachMessage`, a pub/sub listener) inside a span that carries the
 * handler's code location: the key `cyb diff` holds against the static call graph. The location is
 * found once, here, not per call. The wrapper keeps `this`, the arguments, the result and any error,
 * and has the handler's arity (Express tells error handlers apart by it).
 *
 * @example
 * app.post('/v1/generate', traced(generate));
 */
export function traced<F extends AnyFunction>(handler: F): F {
  const found = locateFunction(handler, { root: DEMO_ROOT });
  const code: CodeLocation = { ...found };
  const name = `handler ${found.function}`;
  const wrapper = function (this: unknown, ...args: unknown[]): unknown {
    return span(name, { code }, () => handler.apply(this, args));
  };
  Object.defineProperty(wrapper, 'length', { value: handler.length });
  Object.defineProperty(wrapper, 'name', { value: handler.name });
  return wrapper as F;
}

const locations = new WeakMap<AnyFunction, CodeLocation>();

/**
 * Runs one step of a handler inside a span located at `fn`. Write the call to `fn` inside `run`, so the
 * static call graph has the edge from the handler to `fn`, and `cyb diff` counts it as a static edge
 * that ran, the counterpart of the invisible ones.
 *
 * @example
 * const draft = tracedCall(draftText, () => draftText(request.prompt, request.maxTokens));
 */
export function tracedCall<T>(fn: AnyFunction, run: () => T): T {
  let code = locations.get(fn);
  if (code === undefined) {
    code = { ...locateFunction(fn, { root: DEMO_ROOT }) };
    locations.set(fn, code);
  }
  return span(`call ${code.function ?? fn.name}`, { code }, run);
}
