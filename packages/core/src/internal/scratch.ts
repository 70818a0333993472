import { settings } from './config.js';

/**
 * Where the loops that check or hash ids and headers read characters from, once
 * `configure({ readTextAsBytes: true })` is set (`traceRedis()` sets it): one buffer the text is
 * written into as UTF-8 by one native call, read as bytes.
 *
 * Once any module of the process subclasses `String` (ioredis does, for RESP3 verbatim strings), V8
 * keeps `String.prototype` in dictionary mode, and optimised code then looks `charCodeAt` up through
 * the generic property load on every call. Timed alone, the version 00 `traceparent` check took 296
 * ns with a fast `String.prototype` and 1,092 ns after `require('ioredis')`; read from this buffer,
 * 139 and 198 ns. In a traced ioredis process callgrind counted 121 such lookups per message. But
 * the native call costs about 2,000 instructions, more than an inlined `charCodeAt` loop over an id
 * in a process without such a subclass, so it is not the default.
 *
 * Only synchronous code uses the buffer, and each caller reads what it wrote before returning.
 */
const SCRATCH_SIZE = 256;
// At most three bytes per UTF-16 unit: text this long always fits whole.
const MAX_CHARS = 85;
const scratch = Buffer.allocUnsafe(SCRATCH_SIZE);

/**
 * `text` as bytes in the scratch buffer, when text is read as bytes and `text` is ASCII of at most 85
 * characters: then byte `i` is `text.charCodeAt(i)`. Undefined otherwise, and the caller reads
 * characters (`codeAt`), so either way a loop sees the same codes.
 */
export function asciiBytes(text: string): Buffer | undefined {
  if (!settings.readTextAsBytes || text.length > MAX_CHARS) return undefined;
  // Any character beyond ASCII takes two bytes or more, so the count tells.
  return scratch.write(text, 0, SCRATCH_SIZE, 'utf8') === text.length ? scratch : undefined;
}

/** Character code `i` of `text`, from `bytes` when `asciiBytes` gave them. */
export function codeAt(text: string, bytes: Buffer | undefined, i: number): number {
  return bytes === undefined ? text.charCodeAt(i) : (bytes[i] as number);
}
