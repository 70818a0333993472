// The Kafka broker stops mid-flow (SIGTERM) and a new one starts. A traced producer and consumer must
// surface exactly the errors untraced ones do, end every span, keep every trace that resumes after
// the restart whole, and leave nothing behind once disconnected. The broker is our own mock cluster:
// the shared one other packages test against is never touched.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Kafka, logLevel, type Consumer, type Producer } from 'kafkajs';
import { kafkaStats, traceConsumer, traceProducer } from '@cyb/kafka';
import type { SpanRecord } from '@cyb/core';
import {
  FailureWatch, SpanLedger, assertCensusBack, describeError, processListeners, resourceCensus, sleep, uniqueName,
  waitUntil,
} from './helpers.js';
import { ThrowawayKafka } from './services.js';

interface Side {
  traced: boolean;
  topic: string;
  producer: Producer;
  consumer: Consumer;
  /** Outcome of each send, in order: `ok` or the rejection. */
  sends: string[];
  /** The rejection errors themselves, to match against the spans. */
  sendErrors: Error[];
  /** Values the consumer handled. */
  received: string[];
  /** What consumer.crash reported. */
  crashes: string[];
}

describe('the Kafka broker stopped and a new one started under a traced producer and consumer', () => {
  const broker = new ThrowawayKafka();
  const topics = [uniqueName('kafka-fault-plain'), uniqueName('kafka-fault-traced')];

  before(async () => {
    await broker.start(topics.map((t) => `${t}:1`));
  });
  after(async () => {
    await broker.stop();
  });

  it('surfaces the same errors traced and untraced, ends every span, resumes every trace, leaks nothing', async (t) => {
    const census = resourceCensus();
    const listeners = processListeners();
    const failuresBefore = kafkaStats().tracingFailures;
    const ledger = new SpanLedger();
    const failures = new FailureWatch();
    // kafkajs asks for the bootstrap list on each connect: after the restart it finds the new broker.
    const kafka = new Kafka({
      clientId: 'cyb-reliability',
      brokers: async () => [broker.address],
      logLevel: logLevel.NOTHING,
      connectionTimeout: 300,
      requestTimeout: 1000,
      retry: { retries: 2, initialRetryTime: 100, maxRetryTime: 300 },
    });
    const side = (traced: boolean, topic: string): Side => {
      const producer = kafka.producer();
      const consumer = kafka.consumer({
        groupId: uniqueName(traced ? 'traced-group' : 'plain-group'),
        sessionTimeout: 4000, heartbeatInterval: 500, maxWaitTimeInMs: 100,
        retry: { retries: 2, initialRetryTime: 100, maxRetryTime: 300 },
      });
      const s: Side = {
        traced, topic,
        producer: traced ? traceProducer(producer) : producer,
        consumer: traced ? traceConsumer(consumer) : consumer,
        sends: [], sendErrors: [], received: [], crashes: [],
      };
      s.consumer.on(s.consumer.events.CRASH, (event) => void s.crashes.push(describeError(event.payload.error)));
      return s;
    };
    const sides = [side(false, topics[0]!), side(true, topics[1]!)];
    const [plain, traced] = sides as [Side, Side];

    let flowing = true;
    let flow: Promise<void> = Promise.resolve();
    try {
      await Promise.all(sides.map(async (s) => {
        await s.producer.connect();
        await s.consumer.connect();
        await s.consumer.subscribe({ topic: s.topic, fromBeginning: true });
        await s.consumer.run({ eachMessage: async ({ message }) => void s.received.push(String(message.value)) });
      }));

      // A steady flow on both sides, one message each per round.
      flow = (async () => {
        for (let n = 1; flowing; n++) {
          await Promise.all(sides.map((s) => s.producer.send({ topic: s.topic, messages: [{ value: `m${n}` }] }).then(
            () => void s.sends.push('ok'),
            (error: Error) => {
              s.sends.push(`${describeError(error)} (cause ${describeError((error as { cause?: unknown }).cause)})`);
              s.sendErrors.push(error);
            },
          )));
          await sleep(20);
        }
      })();
      await waitUntil(() => sides.every((s) => s.received.length >= 5), 'the flow to reach both consumers');

      await broker.stop();
      await waitUntil(() => sides.every((s) => s.sendErrors.length > 0 && s.crashes.length > 0), 'both sides to see the broker gone');
      const restartedAt = Math.max(plain.sends.length, traced.sends.length);
      await broker.start(topics.map((t) => `${t}:1`));
      // Sent once the new broker is up, and consumed after the groups joined it again.
      await waitUntil(() => sides.every((s) => s.sends.slice(restartedAt).includes('ok')), 'sends to succeed again', 15_000);
      await waitUntil(() => sides.every((s) => s.received.length > 0 && Number(s.received.at(-1)!.slice(1)) > restartedAt), 'both consumers to resume', 15_000);
    } finally {
      flowing = false;
      await flow;
      for (const s of sides) {
        await s.consumer.disconnect();
        await s.producer.disconnect();
      }
      ledger.stop();
    }
    await assertCensusBack(census, 'after every client disconnected');

    t.diagnostic(`untraced: ${plain.sends.length} sends, ${plain.sendErrors.length} failed, ${plain.crashes.length} consumer crashes, ${plain.received.length} consumed; ` +
      `traced: ${traced.sends.length} sends, ${traced.sendErrors.length} failed, ${traced.crashes.length} consumer crashes, ${traced.received.length} consumed`);
    // The application's view: the same errors, traced or not.
    const distinctSorted = (list: readonly string[]): string[] => [...new Set(list)].sort();
    assert.deepEqual(distinctSorted(traced.sends), distinctSorted(plain.sends));
    // A crash's cause is the same on both sides; its kafkajs class is not a tracing matter: whether a
    // restarted consumer also ran out of retries (KafkaJSNumberOfRetriesExceeded) or not
    // (KafkaJSNonRetriableError) depends on how long the broker stayed down when that side restarted.
    const causeOf = (crash: string): string => crash.slice(crash.indexOf(': ') + 2);
    assert.deepEqual(distinctSorted(traced.crashes.map(causeOf)), distinctSorted(plain.crashes.map(causeOf)));
    for (const crash of [...traced.crashes, ...plain.crashes]) assert.match(crash, /^KafkaJS\w+Error: |^KafkaJSNumberOfRetriesExceeded: /);
    assert.match(plain.sends.join('\n'), /ECONNREFUSED|Connection error|closed/);

    // Every span ended; each failed send's span carries kafkajs's error.
    assert.deepEqual(ledger.open().map((s) => s.name), []);
    const ended = [...ledger.ended.values()];
    const sendSpans = ended.filter((s) => s.name === `send ${traced.topic}`);
    assert.equal(sendSpans.length, traced.sends.length, 'one span per message sent');
    const failed = sendSpans.filter((s) => s.status.code === 'error');
    assert.equal(failed.length, traced.sendErrors.length);
    assert.deepEqual(failed.map((s) => s.status.message).sort(), traced.sendErrors.map((e) => e.message).sort());
    // Every message consumed continues the trace of the send that produced it, before and after the restart.
    const processSpans = ended.filter((s) => s.name === `process ${traced.topic}`);
    assert.equal(processSpans.length, traced.received.length);
    const bySpanId = new Map<string, SpanRecord>(sendSpans.map((s) => [s.spanId, s]));
    for (const p of processSpans) {
      const parent = bySpanId.get(p.parentSpanId ?? '');
      assert.ok(parent, `process span ${p.spanId} has its send span as parent`);
      assert.equal(parent.traceId, p.traceId);
      assert.equal(parent.status.code, 'unset');
    }
    assert.ok(plain.received.length > 0 && traced.received.length > 0);

    assert.equal(kafkaStats().tracingFailures, failuresBefore);
    assert.deepEqual(failures.stop(), []);
    assert.deepEqual(processListeners(), listeners);
  });
});
