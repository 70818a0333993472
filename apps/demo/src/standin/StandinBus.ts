import { randomBytes } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import { readMessages, writeMessage, type WireMessage } from './wire.js';

/**
 * A tiny message bus that stands in for RabbitMQ and Kafka when they cannot be reached. It lives in
 * the launcher; service processes reach it over a loopback socket through clients with the amqplib
 * channel and kafkajs producer/consumer shapes, so the same tracing wrappers apply unchanged.
 *
 * It keeps what the demo needs and nothing more: topic/direct/fanout exchanges, queues with
 * acknowledgements, prefetch and requeue; append-only Kafka topics with one partition and consumer
 * groups that get each message once, in order. Nothing is persisted.
 */

interface StoredMessage {
  exchange: string;
  routingKey: string;
  content: string;
  properties: Record<string, unknown>;
  redelivered: boolean;
}

interface Consumer {
  client: Client;
  channel: number;
  tag: string;
  noAck: boolean;
}

interface Queue {
  name: string;
  messages: StoredMessage[];
  consumers: Consumer[];
  next: number;
  autoDelete: boolean;
  hadConsumer: boolean;
}

interface Exchange {
  type: string;
  bindings: { queue: string; pattern: string }[];
}

interface Unacked {
  queue: string;
  message: StoredMessage;
  consumer: Consumer | undefined;
}

interface ChannelState {
  nextTag: number;
  prefetch: number;
  unacked: Map<number, Unacked>;
}

interface KafkaRecord {
  key: string | null;
  value: string | null;
  headers: Record<string, unknown>;
  timestamp: string;
}

interface GroupMember {
  client: Client;
  running: boolean;
}

interface Group {
  id: string;
  topics: Set<string>;
  fromBeginning: boolean;
  offsets: Map<string, number>;
  /** Topic -> the connection holding its in-flight message. */
  inFlight: Map<string, Client>;
  members: GroupMember[];
  next: number;
}

interface Client {
  socket: Socket;
  channels: Map<number, ChannelState>;
}

/** Topic-exchange matching: `*` is one word, `#` zero or more. */
function topicMatches(pattern: string, key: string): boolean {
  const p = pattern.split('.');
  const k = key.split('.');
  const match = (i: number, j: number): boolean => {
    if (i === p.length) return j === k.length;
    if (p[i] === '#') {
      for (let n = j; n <= k.length; n++) if (match(i + 1, n)) return true;
      return false;
    }
    if (j === k.length) return false;
    return (p[i] === '*' || p[i] === k[j]) && match(i + 1, j + 1);
  };
  return match(0, 0);
}

export class StandinBus {
  readonly #server: Server;
  readonly #clients = new Set<Client>();
  readonly #exchanges = new Map<string, Exchange>();
  readonly #queues = new Map<string, Queue>();
  readonly #topics = new Map<string, KafkaRecord[]>();
  readonly #groups = new Map<string, Group>();
  #port = 0;
  /** Counters for the launcher's report. */
  readonly counts = { published: 0, delivered: 0, produced: 0, consumed: 0 };

  constructor() {
    this.#server = createServer((socket) => this.#accept(socket));
  }

  /** Listens on a free loopback port; resolves with the URL clients connect to. */
  async listen(): Promise<string> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(0, '127.0.0.1', () => resolve());
    });
    const address = this.#server.address();
    this.#port = typeof address === 'object' && address !== null ? address.port : 0;
    return this.url;
  }

  get url(): string {
    return `cyb-standin://127.0.0.1:${this.#port}`;
  }

  async close(): Promise<void> {
    for (const client of this.#clients) client.socket.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  // ---- connections ----------------------------------------------------------------------------

  #accept(socket: Socket): void {
    const client: Client = { socket, channels: new Map() };
    this.#clients.add(client);
    socket.setNoDelay(true);
    socket.on('error', () => socket.destroy());
    socket.on('close', () => this.#drop(client));
    readMessages(socket, (message) => {
      let result: unknown;
      try {
        result = this.#handle(client, message);
      } catch (error) {
        if (message.id !== undefined) writeMessage(socket, { id: message.id, error: (error as Error).message });
        return;
      }
      if (message.id !== undefined) writeMessage(socket, { id: message.id, result: result ?? null });
    });
  }

  #drop(client: Client): void {
    this.#clients.delete(client);
    for (const channel of [...client.channels.keys()]) this.#closeChannel(client, channel);
    for (const group of this.#groups.values()) this.#leave(client, group.id);
  }

  #handle(client: Client, m: WireMessage): unknown {
    switch (m.op) {
      case 'amqp.openChannel':
        client.channels.set(Number(m.channel), { nextTag: 1, prefetch: 0, unacked: new Map() });
        return true;
      case 'amqp.closeChannel':
        this.#closeChannel(client, Number(m.channel));
        return true;
      case 'amqp.assertExchange':
        return this.#assertExchange(String(m.exchange), String(m.type ?? 'topic'));
      case 'amqp.deleteExchange':
        this.#exchanges.delete(String(m.exchange));
        return {};
      case 'amqp.assertQueue':
        return this.#assertQueue(String(m.queue ?? ''), Boolean(m.autoDelete));
      case 'amqp.checkQueue':
        return this.#queueInfo(this.#existingQueue(String(m.queue)));
      case 'amqp.deleteQueue': {
        const queue = this.#queues.get(String(m.queue));
        this.#queues.delete(String(m.queue));
        return { messageCount: queue?.messages.length ?? 0 };
      }
      case 'amqp.purgeQueue': {
        const queue = this.#existingQueue(String(m.queue));
        const messageCount = queue.messages.length;
        queue.messages = [];
        return { messageCount };
      }
      case 'amqp.bindQueue':
        return this.#bind(String(m.queue), String(m.exchange), String(m.pattern ?? ''));
      case 'amqp.prefetch':
        this.#channel(client, m).prefetch = Math.max(0, Number(m.count) || 0);
        return {};
      case 'amqp.publish':
        this.#publish(String(m.exchange ?? ''), String(m.routingKey ?? ''), String(m.content ?? ''), (m.properties as Record<string, unknown>) ?? {});
        return true;
      case 'amqp.consume':
        return this.#consume(client, m);
      case 'amqp.cancel':
        this.#cancel(client, Number(m.channel), String(m.consumerTag));
        return {};
      case 'amqp.get':
        return this.#get(client, m);
      case 'amqp.settle':
        this.#settle(client, m);
        return true;
      case 'kafka.produce':
        return this.#produce(String(m.topic), (m.messages as KafkaRecord[]) ?? []);
      case 'kafka.subscribe':
        return this.#subscribe(String(m.groupId), (m.topics as string[]) ?? [], Boolean(m.fromBeginning));
      case 'kafka.run':
        return this.#run(client, String(m.groupId));
      case 'kafka.commit':
        this.#commit(String(m.groupId), String(m.topic), Number(m.offset));
        return true;
      case 'kafka.leave':
        this.#leave(client, String(m.groupId));
        return true;
      default:
        throw new Error(`stand-in bus: unknown operation ${String(m.op)}`);
    }
  }

  // ---- AMQP -------------------------------------------------------------------------------------

  #channel(client: Client, m: WireMessage): ChannelState {
    const state = client.channels.get(Number(m.channel));
    if (!state) throw new Error(`stand-in bus: channel ${String(m.channel)} is not open`);
    return state;
  }

  #assertExchange(name: string, type: string): { exchange: string } {
    const existing = this.#exchanges.get(name);
    if (existing && existing.type !== type) throw new Error(`PRECONDITION_FAILED - exchange ${name} is ${existing.type}, not ${type}`);
    if (!existing) this.#exchanges.set(name, { type, bindings: [] });
    return { exchange: name };
  }

  #assertQueue(name: string, autoDelete: boolean): { queue: string; messageCount: number; consumerCount: number } {
    const queueName = name === '' ? `amq.gen-${randomBytes(8).toString('hex')}` : name;
    let queue = this.#queues.get(queueName);
    if (!queue) {
      queue = { name: queueName, messages: [], consumers: [], next: 0, autoDelete, hadConsumer: false };
      this.#queues.set(queueName, queue);
    }
    return this.#queueInfo(queue);
  }

  #existingQueue(name: string): Queue {
    const queue = this.#queues.get(name);
    if (!queue) throw new Error(`NOT_FOUND - no queue '${name}'`);
    return queue;
  }

  #queueInfo(queue: Queue): { queue: string; messageCount: number; consumerCount: number } {
    return { queue: queue.name, messageCount: queue.messages.length, consumerCount: queue.consumers.length };
  }

  #bind(queue: string, exchange: string, pattern: string): object {
    this.#existingQueue(queue);
    const ex = this.#exchanges.get(exchange);
    if (!ex) throw new Error(`NOT_FOUND - no exchange '${exchange}'`);
    if (!ex.bindings.some((b) => b.queue === queue && b.pattern === pattern)) ex.bindings.push({ queue, pattern });
    return {};
  }

  #publish(exchange: string, routingKey: string, content: string, properties: Record<string, unknown>): void {
    this.counts.published++;
    const targets = new Set<string>();
    if (exchange === '') {
      targets.add(routingKey);
    } else {
      const ex = this.#exchanges.get(exchange);
      // RabbitMQ would close the channel; the demo never publishes to a missing exchange, so drop it.
      if (!ex) return;
      for (const b of ex.bindings) {
        const hit = ex.type === 'fanout' || (ex.type === 'direct' ? b.pattern === routingKey : topicMatches(b.pattern, routingKey));
        if (hit) targets.add(b.queue);
      }
    }
    for (const name of targets) {
      const queue = this.#queues.get(name);
      if (!queue) continue;
      queue.messages.push({ exchange, routingKey, content, properties, redelivered: false });
      this.#pumpQueue(queue);
    }
  }

  #consume(client: Client, m: WireMessage): { consumerTag: string } {
    this.#channel(client, m);
    const queue = this.#existingQueue(String(m.queue));
    const tag = typeof m.consumerTag === 'string' && m.consumerTag !== '' ? m.consumerTag : `amq.ctag-${randomBytes(8).toString('hex')}`;
    queue.consumers.push({ client, channel: Number(m.channel), tag, noAck: Boolean(m.noAck) });
    queue.hadConsumer = true;
    // Deliver after the reply, as a broker would: the client learns its tag first.
    setImmediate(() => this.#pumpQueue(queue));
    return { consumerTag: tag };
  }

  #cancel(client: Client, channel: number, tag: string): void {
    for (const queue of [...this.#queues.values()]) {
      queue.consumers = queue.consumers.filter((c) => !(c.client === client && c.channel === channel && c.tag === tag));
      this.#maybeAutoDelete(queue);
    }
  }

  #maybeAutoDelete(queue: Queue): void {
    if (queue.autoDelete && queue.hadConsumer && queue.consumers.length === 0) this.#queues.delete(queue.name);
  }

  #get(client: Client, m: WireMessage): unknown {
    const state = this.#channel(client, m);
    const queue = this.#existingQueue(String(m.queue));
    const message = queue.messages.shift();
    if (!message) return false;
    const deliveryTag = state.nextTag++;
    if (!m.noAck) state.unacked.set(deliveryTag, { queue: queue.name, message, consumer: undefined });
    return this.#wireMessage(message, deliveryTag, undefined, queue.messages.length);
  }

  #wireMessage(message: StoredMessage, deliveryTag: number, consumerTag: string | undefined, messageCount?: number): WireMessage {
    const fields: Record<string, unknown> = { deliveryTag, redelivered: message.redelivered, exchange: message.exchange, routingKey: message.routingKey };
    if (consumerTag !== undefined) fields.consumerTag = consumerTag;
    if (messageCount !== undefined) fields.messageCount = messageCount;
    return { fields, properties: message.properties, content: message.content };
  }

  #unackedBy(consumer: Consumer): number {
    const state = consumer.client.channels.get(consumer.channel);
    if (!state) return 0;
    let n = 0;
    for (const u of state.unacked.values()) if (u.consumer === consumer) n++;
    return n;
  }

  /** Hands queued messages to consumers, round robin, as far as their channels' prefetch allows. */
  #pumpQueue(queue: Queue): void {
    while (queue.messages.length > 0 && queue.consumers.length > 0) {
      let chosen: Consumer | undefined;
      for (let i = 0; i < queue.consumers.length; i++) {
        const candidate = queue.consumers[(queue.next + i) % queue.consumers.length]!;
        const state = candidate.client.channels.get(candidate.channel);
        if (!state) continue;
        if (candidate.noAck || state.prefetch === 0 || this.#unackedBy(candidate) < state.prefetch) {
          chosen = candidate;
          queue.next = (queue.next + i + 1) % queue.consumers.length;
          break;
        }
      }
      if (!chosen) return;
      const state = chosen.client.channels.get(chosen.channel)!;
      const message = queue.messages.shift()!;
      const deliveryTag = state.nextTag++;
      if (!chosen.noAck) state.unacked.set(deliveryTag, { queue: queue.name, message, consumer: chosen });
      this.counts.delivered++;
      writeMessage(chosen.client.socket, { type: 'amqp.deliver', channel: chosen.channel, consumerTag: chosen.tag, message: this.#wireMessage(message, deliveryTag, chosen.tag) });
    }
  }

  #settle(client: Client, m: WireMessage): void {
    const state = this.#channel(client, m);
    const tag = Number(m.deliveryTag);
    const multiple = Boolean(m.multiple);
    const outcome = String(m.outcome);
    const tags = tag === 0 ? [...state.unacked.keys()] : multiple ? [...state.unacked.keys()].filter((t) => t <= tag) : [tag];
    const touched = new Set<Queue>();
    for (const t of tags) {
      const entry = state.unacked.get(t);
      if (!entry) continue;
      state.unacked.delete(t);
      const queue = this.#queues.get(entry.queue);
      if (queue) touched.add(queue);
      if (outcome === 'requeue' && queue) queue.messages.unshift({ ...entry.message, redelivered: true });
    }
    for (const queue of touched) this.#pumpQueue(queue);
  }

  #closeChannel(client: Client, channel: number): void {
    const state = client.channels.get(channel);
    client.channels.delete(channel);
    for (const queue of [...this.#queues.values()]) {
      const before = queue.consumers.length;
      queue.consumers = queue.consumers.filter((c) => !(c.client === client && c.channel === channel));
      if (before !== queue.consumers.length) this.#maybeAutoDelete(queue);
    }
    if (!state) return;
    // Unsettled messages go back to their queues, marked redelivered, as on a broker.
    const touched = new Set<Queue>();
    for (const entry of [...state.unacked.values()].reverse()) {
      const queue = this.#queues.get(entry.queue);
      if (!queue) continue;
      queue.messages.unshift({ ...entry.message, redelivered: true });
      touched.add(queue);
    }
    for (const queue of touched) this.#pumpQueue(queue);
  }

  // ---- Kafka ------------------------------------------------------------------------------------

  #produce(topic: string, messages: KafkaRecord[]): unknown[] {
    let log = this.#topics.get(topic);
    if (!log) {
      log = [];
      this.#topics.set(topic, log);
    }
    const baseOffset = log.length;
    for (const m of messages) {
      log.push({ key: m.key ?? null, value: m.value ?? null, headers: m.headers ?? {}, timestamp: m.timestamp ?? String(Date.now()) });
    }
    this.counts.produced += messages.length;
    for (const group of this.#groups.values()) if (group.topics.has(topic)) this.#pumpGroup(group);
    return [{ topicName: topic, partition: 0, errorCode: 0, baseOffset: String(baseOffset), logAppendTime: '-1', logStartOffset: '0' }];
  }

  #group(groupId: string): Group {
    let group = this.#groups.get(groupId);
    if (!group) {
      group = { id: groupId, topics: new Set(), fromBeginning: false, offsets: new Map(), inFlight: new Map(), members: [], next: 0 };
      this.#groups.set(groupId, group);
    }
    return group;
  }

  #subscribe(groupId: string, topics: string[], fromBeginning: boolean): object {
    const group = this.#group(groupId);
    for (const topic of topics) {
      group.topics.add(topic);
      if (!this.#topics.has(topic)) this.#topics.set(topic, []);
      // A group that never committed starts at the beginning or at the end of the log.
      if (!group.offsets.has(topic)) group.offsets.set(topic, fromBeginning ? 0 : this.#topics.get(topic)!.length);
    }
    return {};
  }

  #run(client: Client, groupId: string): object {
    const group = this.#group(groupId);
    group.members.push({ client, running: true });
    setImmediate(() => this.#pumpGroup(group));
    return { memberId: `${groupId}-${randomBytes(4).toString('hex')}`, generationId: 1 };
  }

  /** One message in flight per topic and group, so a group sees its topic in order. */
  #pumpGroup(group: Group): void {
    const members = group.members.filter((m) => m.running && !m.client.socket.destroyed);
    if (members.length === 0) return;
    for (const topic of group.topics) {
      if (group.inFlight.has(topic)) continue;
      const log = this.#topics.get(topic) ?? [];
      const offset = group.offsets.get(topic) ?? 0;
      if (offset >= log.length) continue;
      const member = members[group.next++ % members.length]!;
      const record = log[offset]!;
      group.inFlight.set(topic, member.client);
      this.counts.consumed++;
      writeMessage(member.client.socket, {
        type: 'kafka.deliver',
        groupId: group.id,
        topic,
        partition: 0,
        message: { ...record, offset: String(offset) },
      });
    }
  }

  #commit(groupId: string, topic: string, offset: number): void {
    const group = this.#groups.get(groupId);
    if (!group) return;
    group.inFlight.delete(topic);
    if (Number.isInteger(offset) && offset + 1 > (group.offsets.get(topic) ?? 0)) group.offsets.set(topic, offset + 1);
    this.#pumpGroup(group);
  }

  #leave(client: Client, groupId: string): void {
    const group = this.#groups.get(groupId);
    if (!group) return;
    group.members = group.members.filter((m) => m.client !== client);
    // What it held and never committed goes to the next member, as after a rebalance.
    for (const [topic, holder] of [...group.inFlight]) if (holder === client) group.inFlight.delete(topic);
    this.#pumpGroup(group);
  }
}
