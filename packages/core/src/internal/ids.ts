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
const POOL_SIZE = 16384;
const ZEROS = Buffer.alloc(POOL_SIZE);
const keystream = createCipheriv('aes-128-ctr', randomBytes(16), randomBytes(16));
let pool = Buffer.alloc(0);
let offset = POOL_SIZE;

/**
 * `bytes` random bytes as lower-case hex: a flat string of its own, so a kept id keeps nothing else
 * alive. Buffer's hex encoder counted about 25% fewer instructions per trace id (callgrind) than
 * building the string from a table of character codes, and took the same time.
 */
function randomHex(bytes: 8 | 16): string {
  if (offset + bytes > POOL_SIZE) {
    pool = keystream.update(ZEROS);
    offset = 0;
  }
  const id = pool.toString('hex', offset, offset + bytes);
  offset += bytes;
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
