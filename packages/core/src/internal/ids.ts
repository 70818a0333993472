import { randomFillSync } from 'node:crypto';

// One random buffer refilled in bulk and turned into hex at once: a crypto call, or even a hex
// conversion, per id would dominate span creation. An id is a slice of that string.
const POOL_SIZE = 4096;
const pool = Buffer.allocUnsafe(POOL_SIZE);
let hexPool = '';
let offset = POOL_SIZE * 2;

function randomHex(bytes: number): string {
  const chars = bytes * 2;
  if (offset + chars > POOL_SIZE * 2) {
    randomFillSync(pool);
    hexPool = pool.toString('hex');
    offset = 0;
  }
  const hex = hexPool.slice(offset, offset + chars);
  offset += chars;
  return hex;
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
