// traceProducer's and traceConsumer's own cost per message with no I/O: `send` of 100 messages to a
// stand-in producer that hands the traced messages back, then `eachMessage` for each of them as
// kafkajs would call it (header values as Buffers), spans kept by a Collector. Prints the median of 7
// rounds, in ns per message (both sides together).
//
//   node bench/kafka/loop.mjs [--w3c] [--no-collector] [--plain]
//
// --plain runs the same loop with the stand-ins unwrapped: the harness's own share, to subtract.
import { Collector } from '@cyb/core';
import { traceConsumer, traceProducer } from '@cyb/kafka';

const plain = process.argv.includes('--plain');
if (!plain && !process.argv.includes('--no-collector')) new Collector().start();
const maybeTraceProducer = plain ? (p) => p : traceProducer;
const maybeTraceConsumer = plain ? (c) => c : traceConsumer;
const PER_SEND = 100;

// The parts of a kafkajs producer and consumer the wrappers use.
let delivered = [];
const producer = maybeTraceProducer(
  {
    send: async (record) => {
      delivered = record.messages;
      return [{ topicName: record.topic, partition: 0, errorCode: 0, baseOffset: '0' }];
    },
    sendBatch: async () => [],
    transaction: async () => ({}),
  },
  process.argv.includes('--w3c') ? { formats: ['w3c'] } : {},
);
let eachMessage;
const consumer = maybeTraceConsumer(
  { run: async (config) => void (eachMessage = config.eachMessage), on: () => undefined, events: { GROUP_JOIN: 'consumer.group_join' } },
  { groupId: 'loop' },
);
let handled = 0;
await consumer.run({ eachMessage: async () => void handled++ });

const body = Buffer.alloc(100, 'x');
let offset = 0;
async function round(sends) {
  for (let s = 0; s < sends; s++) {
    const messages = new Array(PER_SEND);
    for (let i = 0; i < PER_SEND; i++) messages[i] = { key: String(i), value: body };
    await producer.send({ topic: 'orders', messages });
    for (const m of delivered) {
      // kafkajs hands headers over as Buffers.
      const headers = {};
      for (const key in m.headers) headers[key] = Buffer.from(m.headers[key]);
      await eachMessage({ topic: 'orders', partition: 0, message: { key: Buffer.from(m.key), value: m.value, headers, offset: String(offset++) } });
    }
  }
}

for (let r = 0; r < 3; r++) await round(200);
const perMessage = [];
for (let r = 0; r < 7; r++) {
  const start = process.hrtime.bigint();
  await round(500);
  perMessage.push(Number(process.hrtime.bigint() - start) / (500 * PER_SEND));
}
perMessage.sort((a, b) => a - b);
console.log(JSON.stringify({ nsPerMessage: Math.round(perMessage[3]), min: Math.round(perMessage[0]), max: Math.round(perMessage[6]), handled }));
