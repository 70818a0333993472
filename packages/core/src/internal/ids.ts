import { createCipheriv, randomBytes } from 'node:crypto';

/*
 * Ids come from one buffer of random bytes refilled in bulk: a crypto call per id would dominate span
 * creation. The bytes are AES-128 in counter mode under a key and a starting counter drawn once from
 * the operating system's generator when this module loads: the usual way to stretch a random key into
 * a stream of random bytes. Refilling with `randomFillSync` instead made one span in every few hundred
 * create an async resource of a kind the process had not seen (its crypto job), and where
 * AsyncLocalStorage is active that kind alone turned Node's store propagation megamorphic for every
 * later async resource: about 2,500 instructions per request on Koa, 4,000 on Express (callgrind).
 * A cipher's `update` creates no async resource.
 */
const POOL_SIZE = 4096;
const ZEROS = Buffer.alloc(POOL_SIZE);
const keystream = createCipheriv('aes-128-ctr', randomBytes(16), randomBytes(16));
// The pool's bytes as one hex string, two characters a byte; ids are cut from it.
let pool = '';
let offset = POOL_SIZE * 2;

/**
 * `bytes` random bytes as lower-case hex. Each refill turns the whole pool into hex with one call,
 * and an id is then a substring of that text: V8 makes it a slice that points into the pool's string
 * rather than a copy. Buffer's hex encoder called per id counted about 700 instructions (callgrind,
 * nearly all of it getting into and out of native code); a substring, under 100. A trace id and a
 * span id took 80 ns instead of 150. A kept id keeps its pool's string alive: 8 KB, shared by the
 * 256 trace ids or 512 span ids cut from it, so a Collector's thousand traces hold a few dozen KB.
 */
function randomHex(bytes: 8 | 16): string {
  const length = bytes * 2;
  if (offset + length > POOL_SIZE * 2) {
    pool = keystream.update(ZEROS).toString('hex');
    offset = 0;
  }
  const id = pool.slice(offset, offset + length);
  offset += length;
  return id;
}

const ZERO_TRACE = '0'.repeat(32);
const ZERO_SPAN = '0'.repeat(16);

/** A random 16-byte trace id as 32 lower-case hex characters, never all zero. */
export function newTraceId(): string {
  let id = randomHex(16);
  while (id === ZERO_TRACE) id = randomHex(16);
  return id;
}

/** A random 8-byte span id as 16 lower-case hex characters, never all zero. */
export function newSpanId(): string {
  let id = randomHex(8);
  while (id === ZERO_SPAN) id = randomHex(8);
  return id;
}

/**
 * Deterministic trace-id ratio decision: every process looking at one trace id decides the same.
 * Uses the right-most 7 bytes, the part W3C Trace Context Level 2 calls random.
 */
export function sampledByRatio(traceId: string, ratio: number): boolean {
  if (ratio >= 1) return true;
  if (ratio <= 0) return false;
  const value = parseInt(traceId.slice(18, 32), 16); // 56 bits, exact in a double
  return value < ratio * 2 ** 56;
}
