const hasOwn = Object.prototype.hasOwnProperty;

/**
 * A shallow copy of `source`'s own enumerable string keys, built by assignment, for adapters that add
 * keys to the copy (a message with trace headers, attributes with one more entry).
 *
 * Not `{ ...source, key: value }`: V8 gives a spread copy a map outside its transition tree, and each
 * key added to it afterwards goes through the runtime. Counted with callgrind, that came to about 4,000
 * instructions per kafkajs message, and every later property read of the copy missed V8's inline
 * caches as well; timed alone with a few reads of the copy, 2.4 µs against 0.05 µs for this copy.
 * An own `__proto__` key (as `JSON.parse` makes) is left out rather than allowed to set the copy's
 * prototype; symbol keys are not copied.
 *
 * @example
 * const traced = shallowCopy(message);
 * traced.headers = headersWithContext(message.headers);
 */
export function shallowCopy<T extends object>(source: T): T {
  const out = {} as Record<string, unknown>;
  for (const key in source) {
    if (hasOwn.call(source, key) && key !== '__proto__') out[key] = (source as Record<string, unknown>)[key];
  }
  return out as T;
}
