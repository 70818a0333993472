import { createCipheriv, randomBytes } from 'node:crypto';
import { DIGITS, hashHexBytes } from './trace-hash.js';

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
// Refilled 16 KB at a time: most of a refill's cost is the call itself (on Node 20 about 5 µs for
// 4 KB and 6 µs for 16 KB), and a traced request takes 24 bytes or more.
const POOL_SIZE = 16384;
const ZEROS = Buffer.alloc(POOL_SIZE);
const keystream = createCipheriv('aes-128-ctr', randomBytes(16), randomBytes(16));
let pool = Buffer.alloc(0);
let offset = POOL_SIZE;

/** Where the next `bytes` random bytes start in `pool`, refilling it when they would not fit. */
function take(bytes: number): number {
  if (offset + bytes > POOL_SIZE) {
    pool = keystream.update(ZEROS);
    offset = 0;
  }
  const at = offset;
  offset += bytes;
  return at;
}

/** True when `bytes` bytes of the pool from `at` are all zero: an id the specification forbids. */
function allZero(at: number, bytes: number): boolean {
  for (let i = at; i < at + bytes; i++) if (pool[i] !== 0) return false;
  return true;
}

/*
 * The hex digits are written by one `String.fromCharCode` call per id, which makes a flat string of
 * its own: a kept id keeps nothing else alive, and the Collector hashes and compares flat strings
 * fastest. Timed against Buffer's hex encoder called per id (a native call, about 700 instructions
 * under callgrind, most of it getting in and out) and against substrings of one hex string per refill
 * (cheapest to make, but V8's slices of it were read about twice as slowly when the Collector hashed
 * and compared them). Making a trace id, checking it and hashing it took 90 ns this way on Node 20
 * and 160 ns on Node 24, against 130 to 140 and 190 to 210 ns for the other two. The digits are
 * passed argument by argument, in both functions below: one reused array of codes passed with
 * `apply` took 88 ns per trace id against 50.
 */
const hi = (byte: number): number => DIGITS[byte >>> 4] as number;
const lo = (byte: number): number => DIGITS[byte & 15] as number;

/**
 * `hashTraceId` of the id `newTraceId` returned last, taken from its bytes (trace-hash.ts): read by
 * the caller right after the call, before anything else can make an id.
 */
export let lastTraceIdHash = 0;

/** A random 16-byte trace id as 32 lower-case hex characters, never all zero. */
export function newTraceId(): string {
  let o = take(16);
  while (allZero(o, 16)) o = take(16);
  const b = pool;
  lastTraceIdHash = hashHexBytes(b, o);
  return String.fromCharCode(
    hi(b[o] as number), lo(b[o] as number), hi(b[o + 1] as number), lo(b[o + 1] as number),
    hi(b[o + 2] as number), lo(b[o + 2] as number), hi(b[o + 3] as number), lo(b[o + 3] as number),
    hi(b[o + 4] as number), lo(b[o + 4] as number), hi(b[o + 5] as number), lo(b[o + 5] as number),
    hi(b[o + 6] as number), lo(b[o + 6] as number), hi(b[o + 7] as number), lo(b[o + 7] as number),
    hi(b[o + 8] as number), lo(b[o + 8] as number), hi(b[o + 9] as number), lo(b[o + 9] as number),
    hi(b[o + 10] as number), lo(b[o + 10] as number), hi(b[o + 11] as number), lo(b[o + 11] as number),
    hi(b[o + 12] as number), lo(b[o + 12] as number), hi(b[o + 13] as number), lo(b[o + 13] as number),
    hi(b[o + 14] as number), lo(b[o + 14] as number), hi(b[o + 15] as number), lo(b[o + 15] as number),
  );
}

/** A random 8-byte span id as 16 lower-case hex characters, never all zero. */
export function newSpanId(): string {
  let o = take(8);
  while (allZero(o, 8)) o = take(8);
  const b = pool;
  return String.fromCharCode(
    hi(b[o] as number), lo(b[o] as number), hi(b[o + 1] as number), lo(b[o + 1] as number),
    hi(b[o + 2] as number), lo(b[o + 2] as number), hi(b[o + 3] as number), lo(b[o + 3] as number),
    hi(b[o + 4] as number), lo(b[o + 4] as number), hi(b[o + 5] as number), lo(b[o + 5] as number),
    hi(b[o + 6] as number), lo(b[o + 6] as number), hi(b[o + 7] as number), lo(b[o + 7] as number),
  );
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
