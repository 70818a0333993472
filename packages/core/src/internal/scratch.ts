import { settings } from './config.js';
import { keepStringPrototypeFast } from './fast-strings.js';

/**
 * Where the Collector's trace-id hash and the id check of foreign span contexts (`isHexId`) read
 * characters from, once `configure({ readTextAsBytes: true })` is set: one
 * buffer the text is written into as UTF-8 by one native call, read as bytes. (The `traceparent`
 * check used it too until it became a regular expression, validate.ts.)
 *
 * It was made for processes where some module subclasses `String` (ioredis does), which left
 * `String.prototype` in dictionary mode and every `charCodeAt` a generic property load: the version
 * 00 `traceparent` check took 1,092 ns there, 198 ns read from this buffer. This package now puts
 * `String.prototype` back into fast mode when it loads (fast-strings.ts), and the gap is small: in a
 * traced ioredis pub/sub process callgrind counted 91,400 and 92,100 instructions per message with
 * bytes, 92,800 and 95,200 without (compilation left out; the `traceparent` check still read bytes
 * then). There the values read are slices of an envelope's header text. Since the trace-id hash
 * takes two characters per step (trace-hash.ts), hashing such a slice took 102 ns through
 * `charCodeAt` and 145 ns as bytes (Node 20, ioredis loaded), and `traceRedis()` no longer turns
 * this on. The native call, about 2,000 instructions, costs more than an inlined `charCodeAt` loop
 * over an id, so it is not the default.
 *
 * Only synchronous code uses the buffer, and each caller reads what it wrote before returning.
 */
const SCRATCH_SIZE = 256;
// At most three bytes per UTF-16 unit: text this long always fits whole.
const MAX_CHARS = 85;
const scratch = Buffer.allocUnsafe(SCRATCH_SIZE);

// The loops that read ids (validate.ts, trace-hash.ts) call charCodeAt: see fast-strings.ts.
keepStringPrototypeFast();

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
