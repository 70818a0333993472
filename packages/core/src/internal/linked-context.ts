import { createContextKey, type Context } from '@opentelemetry/api';

/** The key `@opentelemetry/api` keeps the span under (`createContextKey` is `Symbol.for`). */
export const SPAN_KEY = createContextKey('OpenTelemetry Context Key SPAN');

// Marks a key deleted in a child without touching the parent.
const DELETED = Symbol('cyb.context.deleted');
// Past this many links a context is flattened, so reading a key never walks a long chain.
const MAX_DEPTH = 16;

/**
 * A context that holds one value and points at its parent, which may be any `Context` (the OpenTelemetry
 * root, or one an SDK made). Setting a value costs one small object instead of a copy of every value the
 * parent holds, which is what a span per message needs; reading walks at most `MAX_DEPTH` links.
 * It follows the `Context` contract: immutable, `setValue` and `deleteValue` return a new context.
 */
export class LinkedContext implements Context {
  readonly #parent: Context;
  readonly #key: symbol;
  readonly #value: unknown;
  readonly #depth: number;

  constructor(parent: Context, key: symbol, value: unknown) {
    this.#parent = parent;
    this.#key = key;
    this.#value = value;
    this.#depth = parent instanceof LinkedContext ? parent.#depth + 1 : 1;
  }

  getValue(key: symbol): unknown {
    if (this.#key === key) return this.#value === DELETED ? undefined : this.#value;
    let ctx = this.#parent;
    while (ctx instanceof LinkedContext) {
      if (ctx.#key === key) return ctx.#value === DELETED ? undefined : ctx.#value;
      ctx = ctx.#parent;
    }
    return ctx.getValue(key);
  }

  setValue(key: symbol, value: unknown): Context {
    return link(this, key, value);
  }

  deleteValue(key: symbol): Context {
    return this.getValue(key) === undefined ? this : link(this, key, DELETED);
  }

  /** True when a link more on this chain should fold it first. */
  static isDeep(ctx: Context): ctx is LinkedContext {
    return ctx instanceof LinkedContext && ctx.#depth >= MAX_DEPTH;
  }

  /** The same values on the nearest context that is not a link, each written once. */
  static flatten(ctx: LinkedContext): Context {
    const seen = new Set<symbol>();
    const values: [symbol, unknown][] = [];
    let base: Context = ctx;
    while (base instanceof LinkedContext) {
      if (!seen.has(base.#key)) {
        seen.add(base.#key);
        values.push([base.#key, base.#value]);
      }
      base = base.#parent;
    }
    // Values written once each on the base, outermost first: the result reads exactly as `ctx` did.
    for (let i = values.length - 1; i >= 0; i--) {
      const [key, value] = values[i] as [symbol, unknown];
      base = value === DELETED ? base.deleteValue(key) : base.setValue(key, value);
    }
    return base;
  }
}

/** `parent` with `key` set to `value`, as a link; a chain grown too long is folded into its base first. */
export function link(parent: Context, key: symbol, value: unknown): Context {
  if (LinkedContext.isDeep(parent)) parent = LinkedContext.flatten(parent);
  return new LinkedContext(parent, key, value);
}
