import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import * as amqplib from 'amqplib';
import type { Channel, ChannelModel, ConsumeMessage } from 'amqplib';
import express from 'express';
import { traceChannel } from '@cyb/amqp';
import { Collector, currentSpan, type SpanRecord } from '@cyb/core';
import { traceHttp } from '@cyb/http';
import type { Consumer, Producer } from 'kafkajs';
import { traceConsumer, traceProducer } from '../src/index.js';
import { consumerConfig, kafkaClient, parseTraceparent, uniqueName, waitFor } from './helpers.js';

const AMQP_URL = process.env.AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';

describe('HTTP -> Kafka -> consumer -> AMQP publish', () => {
  const kafka = kafkaClient('cyb-kafka-chain-test');
  const collector = new Collector({ maxSpansPerTrace: 200 }).start();
  const topic = uniqueName('orders');
  const queue = uniqueName('invoices');
  let server: Server;
  let rawProducer: Producer;
  let consumer: Consumer;
  let connection: ChannelModel;
  let publishChannel: Channel;
  let consumeChannel: Channel;
  const delivered: { message: ConsumeMessage; activeSpanId: string | undefined }[] = [];
  let ready = false;

  before(async () => {
    connection = await amqplib.connect(AMQP_URL);
    publishChannel = traceChannel(await connection.createChannel());
    consumeChannel = traceChannel(await connection.createChannel());
    await publishChannel.assertQueue(queue, { durable: false });
    await consumeChannel.consume(queue, (message) => {
      if (message === null) return;
      delivered.push({ message, activeSpanId: currentSpan()?.spanContext().spanId });
      consumeChannel.ack(message);
    });

    rawProducer = kafka.producer();
    await rawProducer.connect();
    const producer = traceProducer(rawProducer);

    // The billing service: takes orders off Kafka, publishes an invoice job to RabbitMQ.
    consumer = traceConsumer(kafka.consumer(consumerConfig(uniqueName('billing'))));
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    consumer.on(consumer.events.GROUP_JOIN, () => {
      ready = true;
    });
    await consumer.run({
      eachMessage: async ({ message }) => {
        const order = JSON.parse(String(message.value)) as { id: string };
        publishChannel.sendToQueue(queue, Buffer.from(JSON.stringify({ invoiceFor: order.id })));
      },
    });

    // The order service: an HTTP endpoint that writes to Kafka.
    const app = express();
    app.use(traceHttp());
    app.use(express.json());
    app.post('/orders', async (req, res) => {
      await producer.send({ topic, messages: [{ key: String(req.body.id), value: JSON.stringify(req.body) }] });
      res.status(202).json({ accepted: req.body.id });
    });
    server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    await waitFor('the billing consumer to join its group', () => (ready ? true : undefined));
  });

  after(async () => {
    collector.stop();
    await new Promise((resolve) => server?.close(resolve));
    await consumer?.disconnect();
    await rawProducer?.disconnect();
    await publishChannel?.deleteQueue(queue).catch(() => undefined);
    await connection?.close();
  });

  it('is one trace, from the HTTP client’s context to the AMQP consumer', async () => {
    const traceId = randomBytes(16).toString('hex');
    const clientSpanId = randomBytes(8).toString('hex');
    const { port } = server.address() as AddressInfo;
    const response = await fetch(`http://127.0.0.1:${port}/orders`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', traceparent: `00-${traceId}-${clientSpanId}-01` },
      body: JSON.stringify({ id: 'order-42' }),
    });
    assert.equal(response.status, 202);
    assert.deepEqual(await response.json(), { accepted: 'order-42' });

    const spans = await waitFor('the AMQP consumer span', () => {
      const trace = collector.traces().find((t) => t.traceId === traceId);
      return trace?.spans.some((s) => s.name === `process ${queue}`) ? trace.spans : undefined;
    });
    const byName = (name: string): SpanRecord => {
      const found = spans.filter((s) => s.name === name);
      assert.equal(found.length, 1, `one span named ${name}: ${spans.map((s) => s.name).join(', ')}`);
      return found[0]!;
    };
    const server_ = spans.find((s) => s.kind === 'server')!;
    const kafkaSend = byName(`send ${topic}`);
    const kafkaProcess = byName(`process ${topic}`);
    const amqpPublish = spans.find((s) => s.kind === 'producer' && s.attributes['messaging.system'] === 'rabbitmq')!;
    const amqpProcess = byName(`process ${queue}`);

    assert.equal(server_.parentSpanId, clientSpanId);
    assert.equal(kafkaSend.parentSpanId, server_.spanId);
    assert.equal(kafkaProcess.parentSpanId, kafkaSend.spanId);
    assert.equal(kafkaProcess.attributes['messaging.kafka.message.key'], 'order-42');
    assert.ok(amqpPublish, 'the AMQP publish span is in the trace');
    assert.equal(amqpPublish.parentSpanId, kafkaProcess.spanId);
    assert.equal(amqpProcess.parentSpanId, amqpPublish.spanId);

    // What travelled over RabbitMQ names the same trace.
    const [first] = delivered;
    assert.ok(first);
    const onWire = parseTraceparent(String(first.message.properties.headers?.traceparent));
    assert.deepEqual(onWire, { traceId, spanId: amqpPublish.spanId });
    assert.equal(first.activeSpanId, amqpProcess.spanId);
  });
});
