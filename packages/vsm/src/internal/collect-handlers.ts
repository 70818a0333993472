import type { AnyFunction } from './types.js';

/** One operation found on a handler holder, with what the holder says about it. */
export interface CollectedHandler {
  operation: string;
  fn: AnyFunction;
  /** The class that declares the method, when the holder is a class or an instance of one. */
  className?: string;
}

const STATIC_SKIP = new Set(['length', 'name', 'prototype', 'caller', 'arguments']);

function isClass(fn: object): boolean {
  try {
    return /^class[\s{]/.test(Function.prototype.toString.call(fn));
  } catch {
    return false;
  }
}

function methodsOf(target: object, stop: object | null, skip: ReadonlySet<string>, out: CollectedHandler[], seen: Set<string>): void {
  for (let o: object | null = target; o !== null && o !== stop; o = Object.getPrototypeOf(o) as object | null) {
    const owner = typeof o === 'function' ? o : (o as { constructor?: unknown }).constructor;
    const className = typeof owner === 'function' && owner.name ? owner.name : undefined;
    for (const key of Object.getOwnPropertyNames(o)) {
      if (skip.has(key) || seen.has(key)) continue;
      const desc = Object.getOwnPropertyDescriptor(o, key);
      // Accessors are not operations, and reading them could run user code at setup.
      if (desc === undefined || typeof desc.value !== 'function') continue;
      seen.add(key);
      out.push({ operation: key, fn: desc.value as AnyFunction, className });
    }
  }
}

/**
 * The operations a holder offers: a plain object of functions (`{ status: checkStatus }`), an instance
 * of a class (its methods, own function fields first), or a class (its static methods).
 * Throws a TypeError on anything else, so a typo fails at setup rather than on the first message.
 */
export function collectHandlers(system: string, holder: unknown): CollectedHandler[] {
  const out: CollectedHandler[] = [];
  const seen = new Set<string>();
  if (typeof holder === 'function' && isClass(holder)) {
    methodsOf(holder, Function.prototype, STATIC_SKIP, out, seen);
  } else if (holder !== null && typeof holder === 'object') {
    const proto = Object.getPrototypeOf(holder) as object | null;
    const plain = proto === null || proto === Object.prototype;
    for (const key of Object.keys(holder)) {
      const value = (holder as Record<string, unknown>)[key];
      if (typeof value === 'function') {
        seen.add(key);
        out.push({ operation: key, fn: value as AnyFunction });
      } else if (plain) {
        throw new TypeError(`vsm.system('${system}'): handler for operation "${key}" must be a function, got ${typeof value}`);
      }
    }
    if (!plain) methodsOf(proto, Object.prototype, new Set(['constructor']), out, seen);
  } else {
    throw new TypeError(`vsm.system('${system}'): handlers must be an object of functions, a class instance or a class`);
  }
  if (out.length === 0) throw new TypeError(`vsm.system('${system}'): no handler functions found`);
  return out;
}
