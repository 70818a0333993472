import { randomFillSync } from 'node:crypto';

// One random buffer refilled in bulk: a crypto call per id would dominate span creation.
const POOL_SIZE = 16384;
const pool = Buffer.allocUnsafe(POOL_SIZE);
let offset = POOL_SIZE;

// The two character codes of each byte in lower-case hex, and one reused array of codes per id length.
const HEX_CODES = new Uint8Array(512);
for (let i = 0; i < 256; i++) {
  HEX_CODES[2 * i] = '0123456789abcdef'.charCodeAt(i >> 4);
  HEX_CODES[2 * i + 1] = '0123456789abcdef'.charCodeAt(i & 15);
}
const codes16: number[] = new Array<number>(16).fill(0);
const codes32: number[] = new Array<number>(32).fill(0);

/**
 * `bytes` random bytes as hex. Built with String.fromCharCode, which makes a flat string of its own:
 * a slice of a longer hex string (cheaper by a little) would keep that whole string alive for as long
 * as any one id of it is kept, by a Collector or by the application.
 */
function randomHex(bytes: 8 | 16): string {
  if (offset + bytes > POOL_SIZE) {
    randomFillSync(pool);
    offset = 0;
  }
  const codes = bytes === 8 ? codes16 : codes32;
  for (let i = 0; i < bytes; i++) {
    const b = pool[offset + i] as number;
    codes[2 * i] = HEX_CODES[2 * b] as number;
    codes[2 * i + 1] = HEX_CODES[2 * b + 1] as number;
  }
  offset += bytes;
  return String.fromCharCode.apply(null, codes);
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
