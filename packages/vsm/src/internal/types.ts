/** Any function, as something to look at or call through a cast; never called with typed arguments. */
export type AnyFunction = (...args: never[]) => unknown;
