// kafkajs's own record codec, with no tracer, no broker and no I/O: what carrying trace headers costs
// a kafkajs message before any tracer does anything. Each record (100-byte value, no key) is encoded
// with kafkajs's record encoder and decoded with its record decoder, carrying no header, one
// `traceparent`, or `traceparent` and `b3` (W3C + B3, this project's default), as strings and as
// Buffers. Prints the median of 7 rounds, variants alternating, in ns per record.
//
//   node bench/kafka/codec.mjs [records per round]
//
// It reaches into kafkajs's source (`src/protocol/recordBatch/record/v0`), which kafkajs 2.x ships
// but does not document; another kafkajs layout is refused with exit code 2.
import { createRequire } from 'node:module';
import { median } from '../lib/rounds.mjs';

const require = createRequire(import.meta.url);
const N = Number(process.argv[2] ?? 100_000);
if (!Number.isInteger(N) || N < 1000) {
  console.error('records per round must be an integer of at least 1000');
  process.exit(2);
}

let encodeRecord;
let decodeRecord;
let Decoder;
let version;
try {
  encodeRecord = require('kafkajs/src/protocol/recordBatch/record/v0');
  decodeRecord = require('kafkajs/src/protocol/recordBatch/record/v0/decoder');
  Decoder = require('kafkajs/src/protocol/decoder');
  version = require('kafkajs/package.json').version;
} catch (err) {
  console.error(`kafkajs's record codec is not where kafkajs 2.x keeps it: ${err.message}`);
  process.exit(2);
}

const TRACEPARENT = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
const B3 = '0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-1';
const VARIANTS = {
  'no header': undefined,
  'traceparent (string)': { traceparent: TRACEPARENT },
  'traceparent + b3 (strings)': { traceparent: TRACEPARENT, b3: B3 },
  'traceparent + b3 (Buffers)': { traceparent: Buffer.from(TRACEPARENT), b3: Buffer.from(B3) },
};
const value = Buffer.alloc(100, 'x');
const batch = { firstOffset: '0', firstTimestamp: '0' };

/** One round of one variant: ns per record to encode, and to decode what was encoded. */
function round(headers) {
  let encoded;
  let start = process.hrtime.bigint();
  for (let i = 0; i < N; i++) encoded = encodeRecord({ offsetDelta: i & 127, timestampDelta: 0, key: null, value, headers });
  const encodeNs = Number(process.hrtime.bigint() - start) / N;
  const bytes = encoded.buffer;
  let decoded;
  start = process.hrtime.bigint();
  for (let i = 0; i < N; i++) {
    const decoder = new Decoder(bytes);
    decoder.readVarInt(); // the record's length, which the batch decoder reads before the record
    decoded = decodeRecord(decoder, batch);
  }
  const decodeNs = Number(process.hrtime.bigint() - start) / N;
  // The round trip must hold, or the figures measure something else.
  for (const name of Object.keys(headers ?? {})) {
    if (decoded.headers[name]?.toString() !== headers[name].toString()) throw new Error(`header ${name} did not survive the codec`);
  }
  if (!decoded.value.equals(value)) throw new Error('value did not survive the codec');
  return { encodeNs, decodeNs };
}

const results = Object.fromEntries(Object.keys(VARIANTS).map((name) => [name, { encode: [], decode: [] }]));
round(undefined); // compile the codec before the first measured round
for (let r = 0; r < 7; r++) {
  for (const [name, headers] of Object.entries(VARIANTS)) {
    const { encodeNs, decodeNs } = round(headers);
    results[name].encode.push(encodeNs);
    results[name].decode.push(decodeNs);
  }
}

console.log(`kafkajs ${version} record codec, Node ${process.version}, ${N} records per round, median of 7 rounds (ns per record)\n`);
console.log('| headers | encode | decode | both | over no header |');
console.log('|---|---:|---:|---:|---:|');
const base = median(results['no header'].encode) + median(results['no header'].decode);
for (const [name, { encode, decode }] of Object.entries(results)) {
  const both = median(encode) + median(decode);
  console.log(`| ${name} | ${median(encode).toFixed(0)} | ${median(decode).toFixed(0)} | ${both.toFixed(0)} | +${(both - base).toFixed(0)} |`);
}
