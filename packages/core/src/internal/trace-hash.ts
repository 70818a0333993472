import { asciiBytes, codeAt } from './scratch.js';

// Random per process, so trace ids chosen to collide in a Collector's table cannot be prepared in
// advance: they arrive from the network.
const SEED = (Math.random() * 0x100000000) >>> 0;
const ODD_SEED = SEED ^ 0x5bd1e995;
const PRIME = 0x01000193;

function finish(a: number, b: number, length: number): number {
  let h = a ^ Math.imul(b ^ length, 0x85ebca6b);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  return h >>> 0;
}

/**
 * A 32-bit hash of a trace id, over every character. Characters are taken two at a time into one
 * 32-bit word (each is a UTF-16 unit, so no two pairs share a word), and the words go alternately
 * to two lanes, so that one lane's multiplications need not wait for the other's. The same hash
 * whether the characters come from `charCodeAt` or from bytes (scratch.ts).
 */
export function hashTraceId(id: string): number {
  let a = SEED;
  let b = ODD_SEED;
  const length = id.length;
  const bytes = asciiBytes(id);
  let i = 0;
  for (; i + 3 < length; i += 4) {
    a = Math.imul(a ^ (codeAt(id, bytes, i) | (codeAt(id, bytes, i + 1) << 16)), PRIME);
    b = Math.imul(b ^ (codeAt(id, bytes, i + 2) | (codeAt(id, bytes, i + 3) << 16)), PRIME);
  }
  // The last one to three characters, into lane a.
  for (; i < length; i++) a = Math.imul(a ^ codeAt(id, bytes, i), PRIME);
  return finish(a, b, length);
}

/** The character codes of the lower-case hex digits, by value. */
export const DIGITS: readonly number[] = Array.from('0123456789abcdef', (c) => c.charCodeAt(0));

// For each byte, its two hex digits as `hashTraceId` packs a pair of characters.
const DIGIT_PAIRS = Int32Array.from({ length: 256 }, (_, byte) => (DIGITS[byte >>> 4] as number) | ((DIGITS[byte & 15] as number) << 16));

/**
 * `hashTraceId` of the 32 lower-case hex digits of the 16 bytes of `bytes` from `at`, read from the
 * bytes: characters 2i and 2i + 1 are the digits of byte i. A trace id made here is hashed this way
 * as it is made, without reading the string back.
 */
export function hashHexBytes(bytes: Uint8Array, at: number): number {
  let a = SEED;
  let b = ODD_SEED;
  for (let i = at; i < at + 16; i += 2) {
    a = Math.imul(a ^ (DIGIT_PAIRS[bytes[i] as number] as number), PRIME);
    b = Math.imul(b ^ (DIGIT_PAIRS[bytes[i + 1] as number] as number), PRIME);
  }
  return finish(a, b, 32);
}
