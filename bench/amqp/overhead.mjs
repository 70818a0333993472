// What traceChannel itself costs per message, without a broker: a stand-in channel with amqplib's
// method names takes the publish, hands the injected headers back as a delivery, and the consumer
// acks it. Prints wall and CPU microseconds per publish + deliver + ack.
//
//   node bench/amqp/overhead.mjs [collector|count]
//
// collector: spans go to a Collector (as in variant.mjs). count: one onSpanEnd subscriber that counts.
import { performance } from 'node:perf_hooks';
import { Collector, onSpanEnd } from '@cyb/core';
import { traceChannel } from '@cyb/amqp';

const sink = process.argv[2] ?? 'collector';
let ended = 0;
if (sink === 'collector') new Collector().start();
else onSpanEnd(() => {
  ended++;
});

class StandInChannel {
  consumers = [];
  last;
  publish(_exchange, _routingKey, _content, options) {
    this.last = options;
    return true;
  }
  sendToQueue(queue, content, options) {
    return this.publish('', queue, content, options);
  }
  consume(_queue, callback) {
    this.consumers.push(callback);
    return Promise.resolve({ consumerTag: 'bench' });
  }
  get() {
    return Promise.resolve(false);
  }
  ack() {}
  nack() {}
  reject() {}
  ackAll() {}
  nackAll() {}
  on() {}
}

const ch = traceChannel(new StandInChannel());
let tag = 0;
await ch.consume('q', (msg) => {
  ch.ack(msg);
});
const body = Buffer.alloc(100);

function one(i) {
  ch.sendToQueue('q', body, { messageId: String(i), contentType: 'application/octet-stream' });
  // What the wire gives the consumer: a fresh table with the values amqplib encoded.
  const headers = {};
  for (const key in ch.last.headers) if (ch.last.headers[key] !== undefined) headers[key] = ch.last.headers[key];
  const msg = {
    fields: { deliveryTag: ++tag, redelivered: false, routingKey: 'q', exchange: '' },
    properties: { headers, messageId: String(i) },
    content: body,
  };
  ch.consumers[0](msg);
}

for (let i = 0; i < 50_000; i++) one(i);
const N = 300_000;
const t = performance.now();
const c0 = process.cpuUsage();
for (let i = 0; i < N; i++) one(i);
const c = process.cpuUsage(c0);
console.log(
  `${sink}: ${(((performance.now() - t) * 1000) / N).toFixed(2)} us wall, ${((c.user + c.system) / N).toFixed(2)} us CPU per publish + deliver + ack`,
);
