import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { contextWithSpan, startSpan, withContext } from '@cyb/core';
import { consumerSpec, writeAttributes } from './internal/attributes.js';
import { debug } from './internal/debug.js';
import { stats, tracingFailed } from './internal/stats.js';
import { text } from './internal/text.js';
import { unwrapStreamFields, type UnwrappedStreamFields } from './stream-fields.js';
import { isTraced, untraceRedis, type RedisClientLike } from './trace-redis.js';

/** One stream entry as a `consumeStream` handler sees it: trace fields set apart. */
export interface StreamEntry<V extends string | Buffer = string> extends UnwrappedStreamFields<V> {
  /** The stream's key, as Redis names it (with any `keyPrefix`). */
  stream: string;
  /** The entry id, `<ms>-<seq>`. */
  id: string;
}

export interface ConsumeStreamOptions<V extends string | Buffer = string> {
  /**
   * The streams to read: keys, or keys mapped to the id to start after. Without a group the default
   * is `$` (entries added from now on); with a group it is `>` (entries never delivered to the group).
   */
  streams: readonly string[] | Readonly<Record<string, string>>;
  /** Read with XREADGROUP as a member of this consumer group; default plain XREAD. */
  group?: string;
  /** This member's name in the group; default `<host>-<pid>-<random>`. */
  consumer?: string;
  /**
   * Create the group (at `$`, with MKSTREAM) when it does not exist yet, and again (from `0`) whenever a
   * read finds it gone, e.g. after Redis restarted without persistence; default false.
   */
  createGroup?: boolean;
  /** XACK each entry once its handler has succeeded (group only); default true. */
  ack?: boolean;
  /** How long one read blocks waiting for entries, in milliseconds; default 5000. `stop()` does not wait for it. */
  block?: number;
  /** Entries per read; default 16. */
  count?: number;
  /** Read field names and values as Buffers instead of UTF-8 strings. */
  buffers?: boolean;
  /** Runs once per entry, in order, inside the producer's context and a CONSUMER span `process <stream>`. */
  handler: (entry: StreamEntry<V>) => unknown;
  /**
   * Told about a handler's error (the entry is then not acknowledged) or a failed read, ack or group
   * creation (`entry` undefined; the consumer retries with backoff). Default: logged under NODE_DEBUG=cyb:redis.
   */
  onError?: (error: unknown, entry: StreamEntry<V> | undefined) => void;
}

/** A running stream consumer. */
export interface StreamConsumer {
  /** Resolves once start ids are fixed (and groups created): entries added from then on will be read. */
  readonly ready: Promise<void>;
  /**
   * Stops reading: a blocked read is cut short, entries already read are still handled, then the
   * consumer's connection is closed. Resolves when all of that is done.
   */
  stop(): Promise<void>;
}

type Send = (...args: (string | number | Buffer)[]) => Promise<unknown>;

/** The ioredis connection methods the consumer uses (ioredis 5 and 6 `Redis`). */
interface Connection extends RedisClientLike {
  on(event: 'error', listener: (error: unknown) => void): unknown;
  call(command: string, ...args: (string | number | Buffer)[]): Promise<unknown>;
  // The named methods, not call(): ioredis 6 reshapes RESP3 stream replies only for those.
  xread: Send;
  xreadBuffer: Send;
  xreadgroup: Send;
  xreadgroupBuffer: Send;
  quit(): Promise<unknown>;
  disconnect(): void;
}

const MAX_BACKOFF_MS = 2000;

function errorCode(error: unknown): string {
  return error instanceof Error ? error.message.split(' ', 1)[0]! : '';
}

/** `[[key, entries], ...]` from a reply in any of the shapes ioredis 5 and 6 give. */
function streamPairs(reply: unknown): Iterable<unknown> {
  if (reply instanceof Map) return reply.entries();
  if (!Array.isArray(reply)) return Object.entries(reply as object); // RESP3 with replyMapping 'resp3'
  if (reply.length === 0 || Array.isArray(reply[0])) return reply; // RESP2 shape
  // A RESP3 map left flat, `[key, entries, key, entries]` (ioredis 6 without its reply transformer).
  const pairs: unknown[][] = [];
  for (let i = 0; i + 1 < reply.length; i += 2) pairs.push([reply[i], reply[i + 1]]);
  return pairs;
}

/** The streams of an XREAD / XREADGROUP reply, each with its entries as `[id, fields]`. */
function* replyStreams(reply: unknown): Generator<[stream: string, entries: [id: string, fields: unknown][]]> {
  if (reply === null || typeof reply !== 'object') return;
  for (const item of streamPairs(reply)) {
    if (!Array.isArray(item) || !Array.isArray(item[1])) continue;
    const entries: [string, unknown][] = [];
    for (const entry of item[1] as unknown[]) {
      if (Array.isArray(entry)) entries.push([text(entry[0]), entry[1]]);
    }
    yield [text(item[0]), entries];
  }
}

class Consumer<V extends string | Buffer> implements StreamConsumer {
  readonly ready: Promise<void>;
  readonly #options: ConsumeStreamOptions<V>;
  readonly #connection: Connection;
  readonly #ids = new Map<string, string>();
  readonly #done: Promise<void>;
  readonly #consumerName: string;
  #markReady!: () => void;
  #stopping = false;
  #reading = false;
  #wake: (() => void) | undefined;
  readonly #keyPrefix: string;

  constructor(client: RedisClientLike, options: ConsumeStreamOptions<V>) {
    this.#options = options;
    this.#consumerName = options.consumer ?? `${hostname()}-${process.pid}-${randomBytes(4).toString('hex')}`;
    const keys = Array.isArray(options.streams) ? options.streams : Object.keys(options.streams);
    const starts = (Array.isArray(options.streams) ? {} : options.streams) as Record<string, string>;
    for (const key of keys) this.#ids.set(String(key), Object.hasOwn(starts, key) ? String(starts[key]) : options.group === undefined ? '$' : '>');
    // Blocking reads need a connection of their own. It is not traced: its reads are the consumer's
    // plumbing, not the application's commands.
    const connection = client.duplicate() as Connection;
    if (isTraced(connection)) untraceRedis(connection);
    // Without a listener ioredis prints every failed reconnect to stderr. The reads that fail meanwhile
    // reach onError on their own, so the connection's errors are only logged here.
    connection.on('error', (error: unknown) => {
      debug('stream consumer connection: %s', error instanceof Error ? error.message : String(error));
    });
    this.#connection = connection;
    const keyPrefix = (connection as { options?: { keyPrefix?: unknown } }).options?.keyPrefix;
    this.#keyPrefix = typeof keyPrefix === 'string' ? keyPrefix : '';
    this.ready = new Promise((resolve) => {
      this.#markReady = resolve;
    });
    this.#done = this.#run();
  }

  stop(): Promise<void> {
    if (!this.#stopping) {
      this.#stopping = true;
      this.#wake?.();
      // Cut a blocked read short instead of waiting up to `block` ms for it to return.
      if (this.#reading) this.#connection.disconnect();
    }
    return this.#done;
  }

  #report(error: unknown, entry: StreamEntry<V> | undefined): void {
    if (entry === undefined) stats.consumerErrors++;
    else stats.handlerErrors++;
    debug('stream consumer: %s', error instanceof Error ? error.message : String(error));
    const onError = this.#options.onError;
    if (onError === undefined) return;
    try {
      onError(error, entry);
    } catch (failure) {
      tracingFailed('onError', failure);
    }
  }

  /** Waits `ms`, or less when stop() is called; the timer never holds the process open. */
  #sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      timer.unref();
      this.#wake = () => {
        clearTimeout(timer);
        resolve();
      };
    }).finally(() => {
      this.#wake = undefined;
    });
  }

  /** `groupStart`: where a group created now begins; `0` when it is recreated, to miss nothing added since. */
  async #setup(groupStart: string): Promise<void> {
    const { group } = this.#options;
    for (const [key, id] of this.#ids) {
      if (group !== undefined) {
        if (this.#options.createGroup === true) {
          try {
            await this.#connection.call('XGROUP', 'CREATE', key, group, groupStart, 'MKSTREAM');
          } catch (error) {
            if (errorCode(error) !== 'BUSYGROUP') throw error;
          }
        }
      } else if (id === '$') {
        // Fix `$` to the current last id once: re-reading with `$` after every timeout would miss
        // the entries added between two reads.
        const last = await this.#connection.call('XREVRANGE', key, '+', '-', 'COUNT', '1');
        this.#ids.set(key, Array.isArray(last) && Array.isArray(last[0]) ? text(last[0][0]) : '0-0');
      }
    }
  }

  #read(): Promise<unknown> {
    const { group, buffers } = this.#options;
    const block = Math.max(0, Math.floor(this.#options.block ?? 5000));
    const count = Math.max(1, Math.floor(this.#options.count ?? 16));
    const args: (string | number)[] = [];
    if (group !== undefined) args.push('GROUP', group, this.#consumerName);
    args.push('COUNT', count, 'BLOCK', block, 'STREAMS', ...this.#ids.keys(), ...this.#ids.values());
    const c = this.#connection;
    if (group !== undefined) return buffers === true ? c.xreadgroupBuffer(...args) : c.xreadgroup(...args);
    return buffers === true ? c.xreadBuffer(...args) : c.xread(...args);
  }

  async #run(): Promise<void> {
    let backoff = 50;
    let ready = false;
    let groupStart = '$';
    try {
      while (!this.#stopping) {
        let reply: unknown;
        this.#reading = true;
        try {
          if (!ready) {
            await this.#setup(groupStart);
            ready = true;
            this.#markReady();
          }
          reply = await this.#read();
        } catch (error) {
          if (this.#stopping) break;
          this.#report(error, undefined);
          if (this.#options.createGroup === true && errorCode(error) === 'NOGROUP') {
            // The group (or the stream) is gone, e.g. Redis restarted without persistence: create it
            // again before the next read, from the start of whatever the stream holds by then.
            ready = false;
            groupStart = '0';
          }
          await this.#sleep(backoff);
          backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
          continue;
        } finally {
          this.#reading = false;
        }
        backoff = 50;
        // Entries already read are handled even when stop() came meanwhile: for a group they are
        // delivered and would otherwise sit unacknowledged.
        for (const [stream, entries] of replyStreams(reply)) {
          for (const [id, fields] of entries) await this.#handle(stream, id, fields);
          this.#advance(stream, entries);
        }
      }
    } finally {
      this.#markReady();
      await this.#close();
    }
  }

  /** Moves the read position of `stream` past the entries just handled. */
  #advance(stream: string, entries: readonly [string, unknown][]): void {
    // Replies name streams with the connection's keyPrefix; the positions are kept by the names given.
    let key = stream;
    if (!this.#ids.has(key) && this.#keyPrefix !== '' && stream.startsWith(this.#keyPrefix)) key = stream.slice(this.#keyPrefix.length);
    const position = this.#ids.get(key);
    if (position === undefined || position === '>') return;
    const last = entries.at(-1);
    if (last !== undefined) this.#ids.set(key, last[0]);
    // A group member reading its own pending entries from an id goes on to new ones once they run out.
    else if (this.#options.group !== undefined) this.#ids.set(key, '>');
  }

  async #close(): Promise<void> {
    try {
      // QUIT lets queued XACKs reach Redis first; a connection that is already gone is just dropped.
      await this.#connection.quit();
    } catch {
      this.#connection.disconnect();
    }
  }

  async #handle(stream: string, id: string, list: unknown): Promise<void> {
    const { group } = this.#options;
    let entry: StreamEntry<V>;
    let span;
    let context;
    try {
      const { fields, fieldList, traceFields, context: parent } = unwrapStreamFields(list as V[] | null);
      entry = { stream, id, fields, fieldList, traceFields, context: parent };
      const spec = consumerSpec(stream, undefined);
      span = startSpan(spec.name, { kind: 'consumer', parent: parent ?? null });
      const attributes = span.attributes;
      writeAttributes(attributes, spec);
      attributes['messaging.message.id'] = id;
      if (group !== undefined) attributes['messaging.consumer.group.name'] = group;
      context = contextWithSpan(span, parent);
    } catch (error) {
      tracingFailed('stream entry', error);
      entry ??= { stream, id, fields: Object.create(null), fieldList: [], traceFields: Object.create(null), context: undefined };
    }
    let ok = true;
    try {
      const handler = this.#options.handler;
      await (context === undefined ? handler(entry) : withContext(context, () => handler(entry)));
    } catch (error) {
      ok = false;
      span?.fail(error);
      this.#report(error, entry);
    } finally {
      span?.end();
    }
    if (ok && group !== undefined && this.#options.ack !== false) {
      // Not awaited: the next read queues behind the ack on the same connection anyway.
      this.#connection.call('XACK', stream, group, id).catch((error: unknown) => this.#report(error, undefined));
    }
  }

}

/**
 * Reads one or more streams (XREAD, or XREADGROUP with `group`) on a connection of its own made with
 * `client.duplicate()`, and runs `handler` for each entry inside the producer's context, in a CONSUMER
 * span `process <stream>` that is a child of the producer's `send <stream>` span. Entries without trace
 * fields start a new trace. The handler sees the application's fields only; the trace fields are in
 * `entry.traceFields`.
 *
 * @example
 * const consumer = consumeStream(redis, {
 *   streams: ['orders'], group: 'billing', createGroup: true,
 *   handler: async (entry) => bill(entry.fields.orderId),
 * });
 * await consumer.ready;
 * // ... on shutdown
 * await consumer.stop();
 */
export function consumeStream(client: RedisClientLike, options: ConsumeStreamOptions<Buffer> & { buffers: true }): StreamConsumer;
export function consumeStream(client: RedisClientLike, options: ConsumeStreamOptions<string> & { buffers?: false }): StreamConsumer;
export function consumeStream<V extends string | Buffer>(client: RedisClientLike, options: ConsumeStreamOptions<V>): StreamConsumer {
  if (client === null || typeof client !== 'object' || typeof client.duplicate !== 'function') {
    throw new TypeError('consumeStream expects an ioredis client');
  }
  if (options === null || typeof options !== 'object' || typeof options.handler !== 'function') {
    throw new TypeError('consumeStream needs a handler function');
  }
  const keys = Array.isArray(options.streams) ? options.streams : options.streams && typeof options.streams === 'object' ? Object.keys(options.streams) : [];
  if (keys.length === 0) throw new TypeError('consumeStream needs at least one stream');
  if (options.group !== undefined && (typeof options.group !== 'string' || options.group === '')) {
    throw new TypeError('group must be a non-empty string');
  }
  return new Consumer(client, options);
}
