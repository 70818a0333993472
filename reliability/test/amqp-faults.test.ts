// RabbitMQ closes the connection under a traced channel while messages sit unsettled and publishes
// wait for their confirms (`rabbitmqctl close_connection`, as an operator or a failover would). The
// application must see exactly what it sees without tracing; the tracer must end every open span with
// an error and keep nothing: no timer, no listener, no pending entry.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import amqp, { type Channel, type ChannelModel, type ConfirmChannel } from 'amqplib';
import { amqpStats, traceChannel } from '@cyb/amqp';
import {
  AMQP_URL, FailureWatch, SpanLedger, TimerWatch, assertCensusBack, describeError, processListeners,
  resourceCensus, sleep, uniqueName, waitUntil,
} from './helpers.js';

const run = promisify(execFile);
const PREFETCH = 20;
/**
 * Publishes waiting for their confirm, always: each confirm sends the next publish. A flow that
 * refilled in batches could have all its confirms back at the moment the server's close arrived,
 * and then the close found nothing unconfirmed on one side and some on the other.
 */
const IN_FLIGHT = 100;

/** The server-side process id of the connection that announced `connectionName` in its client properties. */
async function connectionPid(connectionName: string): Promise<string> {
  // close_connection takes the connection's Erlang pid; the name is how we find our own among all.
  const { stdout } = await run('rabbitmqctl', ['-q', 'list_connections', 'pid', 'client_properties'], { timeout: 20_000 });
  const line = stdout.split('\n').find((l) => l.includes(`"${connectionName}"`) || l.includes(connectionName));
  if (line === undefined) throw new Error(`rabbitmqctl does not list a connection named ${connectionName}:\n${stdout}`);
  return line.split('\t')[0]!.trim();
}

/** What the application's own handlers saw. */
interface Observed {
  /** Connection and channel events, in order. */
  events: string[];
  /** Errors passed to confirm callbacks, by description. */
  confirmErrors: Map<string, number>;
  /** What publish threw once the channel was gone. */
  publishThrew: string[];
  confirmed: number;
  delivered: number;
  /** Listener counts the application's channels had, per event, for both channels. */
  channelListeners: Record<string, number>[];
}

/**
 * Runs the flow on one connection until the server closes it. Resolves once the application has seen
 * the close, with `publishAfterClose` to try one more publish, as an application that did not listen would.
 */
async function scenario(queue: string, traced: boolean): Promise<{ observed: Observed; publishAfterClose: () => void }> {
  const connectionName = uniqueName(traced ? 'traced-conn' : 'plain-conn');
  const observed: Observed = { events: [], confirmErrors: new Map(), publishThrew: [], confirmed: 0, delivered: 0, channelListeners: [] };
  const connection: ChannelModel = await amqp.connect(AMQP_URL, { clientProperties: { connection_name: connectionName } });
  let stopped = false;
  const closed = new Promise<void>((resolve) => connection.once('close', () => resolve()));
  // The application stops publishing when it learns the connection is gone.
  connection.once('close', () => void (stopped = true));
  connection.on('error', (e: unknown) => observed.events.push(`connection error: ${describeError(e)}`));
  connection.on('close', (e: unknown) => observed.events.push(`connection close: ${e === undefined ? '-' : describeError(e)}`));

  const publisher: ConfirmChannel = await connection.createConfirmChannel();
  const consumer: Channel = await connection.createChannel();
  if (traced) {
    traceChannel(publisher);
    traceChannel(consumer);
  }
  for (const [label, channel] of [['publisher', publisher], ['consumer', consumer]] as const) {
    channel.on('error', (e: unknown) => observed.events.push(`${label} error: ${describeError(e)}`));
    channel.on('close', () => observed.events.push(`${label} close`));
  }
  await consumer.prefetch(PREFETCH);
  // Never acks: every delivery stays unsettled until the connection goes.
  await consumer.consume(queue, () => void observed.delivered++);

  let published = 0;
  const publishOne = (): void => {
    if (stopped) return;
    try {
      publisher.sendToQueue(queue, Buffer.from(`m${published}`), { messageId: `m${published}` }, (err: unknown) => {
        if (err === null || err === undefined) {
          observed.confirmed++;
          // Sent while this confirm is handled, before anything later on the socket (the close) is read.
          publishOne();
        } else {
          const key = describeError(err);
          observed.confirmErrors.set(key, (observed.confirmErrors.get(key) ?? 0) + 1);
        }
      });
      published++;
    } catch (err) {
      observed.publishThrew.push(describeError(err));
      stopped = true;
    }
  };
  for (let i = 0; i < IN_FLIGHT; i++) publishOne();
  await waitUntil(() => observed.delivered >= PREFETCH && observed.confirmed > 0, 'deliveries and confirms');
  observed.channelListeners = [publisher, consumer].map((c) => ({ error: c.listenerCount('error'), close: c.listenerCount('close') }));

  const pid = await connectionPid(connectionName);
  await run('rabbitmqctl', ['-q', 'close_connection', pid, 'cyb reliability: closed by the server'], { timeout: 20_000 });
  await closed;
  // Whatever amqplib still does after its close event (socket teardown) has run.
  await sleep(50);
  const publishAfterClose = (): void => {
    try {
      publisher.sendToQueue(queue, Buffer.from('late'), {}, () => undefined);
    } catch (err) {
      observed.publishThrew.push(describeError(err));
    }
  };
  return { observed, publishAfterClose };
}

describe('RabbitMQ closes the connection under a traced channel', () => {
  let admin: ChannelModel;
  let adminChannel: Channel;
  const queues: string[] = [];

  before(async () => {
    admin = await amqp.connect(AMQP_URL);
    adminChannel = await admin.createChannel();
  });

  after(async () => {
    for (const q of queues) await adminChannel.deleteQueue(q);
    await adminChannel.close();
    await admin.close();
  });

  async function freshQueue(): Promise<string> {
    const q = uniqueName('amqp-fault');
    await adminChannel.assertQueue(q, { durable: false });
    queues.push(q);
    return q;
  }

  it('the application sees what it sees untraced; every open span ends with an error; nothing is left behind', async (t) => {
    const census = resourceCensus();
    const listeners = processListeners();
    const statsBefore = amqpStats();
    const ledger = new SpanLedger();
    const failures = new FailureWatch();
    const timers = new TimerWatch();
    const [plainQueue, tracedQueue] = [await freshQueue(), await freshQueue()];
    let plain: Observed;
    let traced: Observed;
    let timersLeft: string[];
    try {
      // Side by side, so both meet the same broker at the same moment.
      const [p, t] = await Promise.all([scenario(plainQueue, false), scenario(tracedQueue, true)]);
      plain = p.observed;
      traced = t.observed;
      await assertCensusBack(census, 'after both connections closed');
      timersLeft = await timers.alive();
      // A publish after the close: amqplib's own error, traced or not, and the span ends with it.
      p.publishAfterClose();
      t.publishAfterClose();
    } finally {
      timers.stop();
      ledger.stop();
    }
    const rejections = failures.stop();

    // The application's view, event for event.
    assert.deepEqual(traced.events, plain.events);
    assert.match(plain.events.join('\n'), /CONNECTION_FORCED - cyb reliability: closed by the server/);
    assert.deepEqual([...traced.confirmErrors.keys()], [...plain.confirmErrors.keys()]);
    assert.equal(traced.delivered, PREFETCH);
    assert.equal(plain.delivered, PREFETCH);
    assert.equal(plain.publishThrew.length, 1);
    assert.match(plain.publishThrew[0]!, /IllegalOperationError: Channel closed/);
    assert.deepEqual(traced.publishThrew, plain.publishThrew);
    // The tracer adds one 'close' listener per channel and never an 'error' listener.
    assert.deepEqual(traced.channelListeners.map((l) => l.error), plain.channelListeners.map((l) => l.error));
    assert.deepEqual(traced.channelListeners.map((l) => l.close), plain.channelListeners.map((l) => l.close + 1));
    const channelClosed = traced.confirmErrors.get('Error: channel closed') ?? 0;
    assert.ok(channelClosed > 0, `some publishes were still unconfirmed at the close: ${JSON.stringify([...traced.confirmErrors])}`);

    t.diagnostic(`traced: ${traced.confirmed} publishes confirmed, ${channelClosed} failed with 'channel closed', ${PREFETCH} deliveries unsettled at the close; ` +
      `untraced: ${plain.confirmed} confirmed, ${plain.confirmErrors.get('Error: channel closed') ?? 0} failed`);
    // Every span that was open at the close has ended, with an error.
    assert.deepEqual(ledger.open().map((s) => s.name), []);
    const consumerSpans = ledger.endedWhere((s) => s.kind === 'consumer');
    assert.equal(consumerSpans.length, PREFETCH);
    for (const s of consumerSpans) {
      assert.equal(s.status.code, 'error');
      assert.equal(s.attributes['messaging.rabbitmq.message.settle'], 'channel_closed');
    }
    const producerSpans = ledger.endedWhere((s) => s.kind === 'producer');
    const closedPublishes = producerSpans.filter((s) => s.attributes['messaging.rabbitmq.message.confirm'] === 'channel_closed');
    assert.equal(closedPublishes.length, channelClosed, 'one error span per publish the application saw fail');
    for (const s of closedPublishes) assert.equal(s.status.code, 'error');
    const acked = producerSpans.filter((s) => s.attributes['messaging.rabbitmq.message.confirm'] === 'ack');
    assert.equal(acked.length, traced.confirmed);
    for (const s of acked) assert.equal(s.status.code, 'unset');
    const late = producerSpans.filter((s) => s.attributes['messaging.rabbitmq.message.confirm'] === undefined);
    assert.equal(late.length, 1, 'the publish after the close');
    assert.equal(late[0]!.status.code, 'error');
    assert.match(late[0]!.status.message ?? '', /Channel closed/);
    assert.equal(producerSpans.length, acked.length + closedPublishes.length + 1, 'every publish span ended by its confirm or by the close');

    // Counters: each span the close ended, once; nothing swallowed by the tracer.
    const stats = amqpStats();
    assert.equal(stats.closedUnsettled - statsBefore.closedUnsettled, PREFETCH + channelClosed);
    assert.equal(stats.errors, statsBefore.errors);
    assert.equal(stats.received - statsBefore.received, PREFETCH);

    assert.deepEqual(rejections, []);
    assert.deepEqual(timersLeft, [], 'timers (referenced or not) still alive after the close');
    assert.deepEqual(processListeners(), listeners);
  });
});
