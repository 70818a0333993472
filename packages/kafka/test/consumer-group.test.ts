import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Collector, contextWithSpan, currentSpan, startSpan, withContext, type SpanRecord } from '@cyb/core';
import { PartitionAssigners, type Consumer, type PartitionAssigner, type Producer } from 'kafkajs';
import { traceConsumer, traceProducer } from '../src/index.js';
import { allSpans, consumerConfig, headerText, kafkaClient, uniqueName, waitFor } from './helpers.js';

describe('traceConsumer: a consumer group of two members', () => {
  const kafka = kafkaClient('cyb-kafka-group-test');
  const collector = new Collector({ maxSpansPerTrace: 200 }).start();
  const topic = uniqueName('split');
  const group = uniqueName('group');
  const count = 20;
  let raw: Producer;
  const members: Consumer[] = [];
  /** Each member's latest assignment of `topic`. */
  const assignment: number[][] = [[], []];
  /** Per member: the message ids it handled and the process span that was active for each. */
  const handled: Map<string, string | undefined>[] = [new Map(), new Map()];
  const producerSpan = new Map<string, SpanRecord>();

  /*
   * librdkafka 2.0.2's mock coordinator (the test broker) marks a group "up" as soon as the leader's
   * SyncGroup carries an assignment for every member. A follower whose own SyncGroup arrives after that
   * gets INVALID_REQUEST, which kafkajs treats as fatal: the member stops for good. A real broker waits for
   * every member. Both members run in this process, so on a busy machine the follower is sometimes the
   * slower one. The leader therefore waits half a second before it assigns, which lets the follower's
   * SyncGroup in first; and a member stopped that way all the same is started again, twice at most,
   * before any message is sent. The checks below only begin once both members hold partitions.
   */
  const patientRoundRobin: PartitionAssigner = (config) => {
    const roundRobin = PartitionAssigners.roundRobin(config);
    return {
      name: roundRobin.name,
      version: roundRobin.version,
      protocol: (subscription) => roundRobin.protocol(subscription),
      assign: async (state) => {
        await new Promise((resolve) => setTimeout(resolve, 500));
        return roundRobin.assign(state);
      },
    };
  };
  let restarts = 0;
  let sending = false;
  async function startMember(m: number): Promise<void> {
    const member = traceConsumer(kafka.consumer({ ...consumerConfig(group), partitionAssigners: [patientRoundRobin] }));
    members.push(member);
    member.on(member.events.GROUP_JOIN, (event) => {
      assignment[m] = [...(event.payload.memberAssignment[topic] ?? [])].sort();
    });
    member.on(member.events.CRASH, (event) => {
      if (event.payload.restart || restarts >= 2 || sending) return;
      restarts++;
      assignment[m] = [];
      startMember(m).catch(() => undefined);
    });
    await member.connect();
    await member.subscribe({ topic, fromBeginning: true });
    await member.run({
      eachMessage: async ({ message }) => {
        handled[m]!.set(headerText(message.headers?.id)!, currentSpan()?.spanContext().spanId);
      },
    });
  }

  before(async () => {
    raw = kafka.producer();
    await raw.connect();
    // Both members join together; the ids of traces only flow once the partitions are split between them.
    await Promise.all([0, 1].map((m) => startMember(m)));
    await waitFor(
      'the two members to split the four partitions',
      () => {
        const [a, b] = assignment;
        const all = [...a!, ...b!].sort();
        return a!.length > 0 && b!.length > 0 && all.join() === '0,1,2,3' ? true : undefined;
      },
      30_000,
    );
    sending = true;
    const producer = traceProducer(raw);
    for (let i = 0; i < count; i++) {
      const root = startSpan(`request ${i}`);
      const id = `m${i}`;
      await withContext(contextWithSpan(root), () => producer.send({ topic, messages: [{ key: id, value: id, partition: i % 4, headers: { id } }] }));
      root.end();
      producerSpan.set(id, allSpans(collector).find((s) => s.parentSpanId === root.spanId)!);
    }
    await waitFor('every message handled', () => (handled[0]!.size + handled[1]!.size >= count ? true : undefined));
  });

  after(async () => {
    collector.stop();
    await Promise.all(members.map((m) => m.disconnect()));
    await raw?.disconnect();
  });

  it('both members work, each on its own partitions, and each message is handled once', () => {
    assert.ok(handled[0]!.size > 0 && handled[1]!.size > 0);
    const ids = [...handled[0]!.keys(), ...handled[1]!.keys()].sort();
    assert.deepEqual(ids, Array.from({ length: count }, (_, i) => `m${i}`).sort());
    for (const m of [0, 1]) {
      for (const id of handled[m]!.keys()) {
        const partition = Number(id.slice(1)) % 4;
        assert.ok(assignment[m]!.includes(partition), `member ${m} handled ${id} from partition ${partition} it owns`);
      }
    }
  });

  it('every trace continues through whichever member took its message', () => {
    const processSpans = allSpans(collector).filter((s) => s.name === `process ${topic}`);
    assert.equal(processSpans.length, count);
    for (const [id, producer] of producerSpan) {
      const trace = collector.traces().find((t) => t.traceId === producer.traceId)!;
      const processed = trace.spans.filter((s) => s.name === `process ${topic}`);
      assert.equal(processed.length, 1, `trace of ${id} has its one process span`);
      assert.equal(processed[0]!.parentSpanId, producer.spanId);
      assert.equal(processed[0]!.attributes['messaging.consumer.group.name'], group);
      const member = handled[0]!.has(id) ? 0 : 1;
      assert.equal(handled[member]!.get(id), processed[0]!.spanId, `the handler of ${id} ran inside that span`);
      assert.equal(processed[0]!.attributes['messaging.destination.partition.id'], String(Number(id.slice(1)) % 4));
    }
  });
});
