/**
 * One buffer for the loops that check or hash ids and headers character by character: the text is
 * written into it as UTF-8 by one native call, and the loop reads bytes.
 *
 * Not `text.charCodeAt(i)`. Once any module of the process subclasses `String` (ioredis does, for
 * RESP3 verbatim strings), V8 keeps `String.prototype` in dictionary mode, and optimised code then
 * looks `charCodeAt` up through the generic property load on every call. Timed alone, the version 00
 * `traceparent` check took 296 ns with a fast `String.prototype` and 1,092 ns after
 * `require('ioredis')`; read from this buffer, 139 and 198 ns. In a traced ioredis process callgrind
 * counted 121 such lookups per message. Characters outside ASCII become bytes of 0x80 and above,
 * which no check here accepts, and make the byte count differ from the length.
 *
 * Only synchronous code uses it, and each caller reads what it wrote before returning.
 */
export const SCRATCH_SIZE = 128;
export const scratch = Buffer.allocUnsafe(SCRATCH_SIZE);

/**
 * Writes `text` into `scratch` as UTF-8 and returns the number of bytes written. Text of up to 42
 * characters always fits whole; longer text may be cut short, at a character boundary.
 */
export function toScratch(text: string): number {
  return scratch.write(text, 0, SCRATCH_SIZE, 'utf8');
}
