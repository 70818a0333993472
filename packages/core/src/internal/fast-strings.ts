/**
 * Puts `String.prototype` back into V8's fast mode, and keeps it there.
 *
 * The first `class ... extends String` of a process (ioredis declares one when it loads, for RESP3
 * verbatim strings) leaves `String.prototype` in dictionary mode. Optimised code then cannot take
 * `charCodeAt`, `slice` or `indexOf` as constants and looks each one up through V8's generic property
 * load at every call, in the whole process. A loop of `charCodeAt` over a 32-character id took 54 ns
 * before `require('ioredis')` and 436 ns after, on Node 20.
 *
 * V8 makes a prototype fast again when an inline cache that has feedback misses on an object whose
 * prototype chain holds it. So a property that does not exist is read, a few dozen times from one
 * small function (V8 allocates a function's feedback only after several calls), on an instance of a
 * String subclass made here. Once that has happened, later subclasses of `String` leave it fast: on
 * Node 20 and 24, `require('ioredis')` after this call keeps it so. Nothing observable changes but
 * speed: no property is added to anything shared, and the subclass and its instance are garbage.
 * On an engine where none of this holds, it costs a few microseconds once.
 */
export function keepStringPrototypeFast(): void {
  class Probe extends String {}
  const probe = new Probe('');
  for (let i = 0; i < 32; i++) missingOn(probe);
}

function missingOn(value: object): unknown {
  return (value as { cybNoSuchProperty?: unknown }).cybNoSuchProperty;
}
