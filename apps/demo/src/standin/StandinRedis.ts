import { createServer, type Server, type Socket } from 'node:net';

/**
 * A stand-in for Redis when none can be reached: a loopback server that speaks RESP2, so the
 * services use the real ioredis client, traced by `@cyb/redis` and the `@cyb/vsm` bridge, unchanged.
 * It knows the commands the demo sends: strings and hashes, pub/sub, the connection handshake, and
 * one script, the bridge's versioned push (EVAL runs it natively; any other script is refused).
 */

type Reply = string | number | null | Error | Buffer | Reply[] | { simple: string };

class RespError extends Error {}

function encode(reply: Reply): Buffer {
  if (reply === null) return Buffer.from('$-1\r\n');
  if (reply instanceof Error) return Buffer.from(`-${reply.message.replace(/\r?\n/g, ' ')}\r\n`);
  if (typeof reply === 'number') return Buffer.from(`:${Math.trunc(reply)}\r\n`);
  if (Array.isArray(reply)) return Buffer.concat([Buffer.from(`*${reply.length}\r\n`), ...reply.map(encode)]);
  if (typeof reply === 'object' && !Buffer.isBuffer(reply)) return Buffer.from(`+${reply.simple}\r\n`);
  const bytes = Buffer.isBuffer(reply) ? reply : Buffer.from(reply);
  return Buffer.concat([Buffer.from(`$${bytes.length}\r\n`), bytes, Buffer.from('\r\n')]);
}

const OK = { simple: 'OK' };

/** Reads RESP arrays of bulk strings (what clients send) from a byte stream. */
class CommandReader {
  #buffer: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): Buffer[][] {
    this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk]);
    const commands: Buffer[][] = [];
    for (;;) {
      const parsed = this.#parseOne();
      if (parsed === undefined) break;
      commands.push(parsed);
    }
    return commands;
  }

  #parseOne(): Buffer[] | undefined {
    const buf = this.#buffer;
    if (buf.length === 0) return undefined;
    if (buf[0] !== 0x2a /* '*' */) {
      // Inline command: words up to the line end.
      const end = buf.indexOf('\r\n');
      if (end === -1) return undefined;
      const words = buf.subarray(0, end).toString('utf8').trim().split(/\s+/).filter((w) => w !== '');
      this.#buffer = buf.subarray(end + 2);
      return words.map((w) => Buffer.from(w));
    }
    let pos = 0;
    const line = (): string | undefined => {
      const end = buf.indexOf('\r\n', pos);
      if (end === -1) return undefined;
      const text = buf.subarray(pos, end).toString('latin1');
      pos = end + 2;
      return text;
    };
    const header = line();
    if (header === undefined) return undefined;
    const count = Number(header.slice(1));
    const args: Buffer[] = [];
    for (let i = 0; i < count; i++) {
      const lenLine = line();
      if (lenLine === undefined) return undefined;
      const len = Number(lenLine.slice(1));
      if (buf.length < pos + len + 2) return undefined;
      args.push(buf.subarray(pos, pos + len));
      pos += len + 2;
    }
    this.#buffer = buf.subarray(pos);
    return args;
  }
}

interface Connection {
  socket: Socket;
  channels: Set<string>;
}

type Value = string | Map<string, string>;

export class StandinRedis {
  readonly #server: Server;
  readonly #data = new Map<string, Value>();
  readonly #connections = new Set<Connection>();
  #port = 0;
  /** Counters for the launcher's report. */
  readonly counts = { commands: 0, published: 0 };

  constructor() {
    this.#server = createServer((socket) => this.#accept(socket));
  }

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
    return `redis://127.0.0.1:${this.#port}`;
  }

  async close(): Promise<void> {
    for (const c of this.#connections) c.socket.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #accept(socket: Socket): void {
    const connection: Connection = { socket, channels: new Set() };
    this.#connections.add(connection);
    const reader = new CommandReader();
    socket.setNoDelay(true);
    socket.on('error', () => socket.destroy());
    socket.on('close', () => this.#connections.delete(connection));
    socket.on('data', (chunk: Buffer) => {
      for (const args of reader.push(chunk)) {
        this.counts.commands++;
        let reply: Reply;
        try {
          reply = this.#run(connection, args);
        } catch (error) {
          reply = error instanceof RespError ? error : new RespError(`ERR ${(error as Error).message}`);
        }
        if (reply !== undefined) socket.write(encode(reply));
        if (args[0]?.toString('latin1').toUpperCase() === 'QUIT') socket.end();
      }
    });
  }

  #hash(key: string, create: boolean): Map<string, string> | undefined {
    const value = this.#data.get(key);
    if (value === undefined) {
      if (!create) return undefined;
      const fresh = new Map<string, string>();
      this.#data.set(key, fresh);
      return fresh;
    }
    if (!(value instanceof Map)) throw new RespError('WRONGTYPE Operation against a key holding the wrong kind of value');
    return value;
  }

  #run(connection: Connection, argv: Buffer[]): Reply {
    const name = (argv[0]?.toString('latin1') ?? '').toUpperCase();
    const args = argv.slice(1).map((a) => a.toString('utf8'));
    switch (name) {
      case 'HELLO':
        // RESP2 only: ioredis then falls back from RESP3.
        return new RespError('NOPROTO this stand-in speaks RESP2 only');
      case 'PING':
        return connection.channels.size > 0 ? ['pong', args[0] ?? ''] : { simple: args[0] ?? 'PONG' };
      case 'ECHO':
        return args[0] ?? '';
      case 'QUIT':
      case 'SELECT':
      case 'CLIENT':
        return OK;
      case 'INFO':
        return '# Server\r\nredis_version:7.0.0-cyb-standin\r\nredis_mode:standalone\r\nloading:0\r\n';
      case 'GET': {
        const v = this.#data.get(args[0]!);
        if (v instanceof Map) throw new RespError('WRONGTYPE Operation against a key holding the wrong kind of value');
        return v ?? null;
      }
      case 'SET':
        this.#data.set(args[0]!, args[1] ?? '');
        return OK;
      case 'DEL': {
        let n = 0;
        for (const key of args) if (this.#data.delete(key)) n++;
        return n;
      }
      case 'EXISTS':
        return args.filter((k) => this.#data.has(k)).length;
      case 'KEYS': {
        const pattern = new RegExp(`^${(args[0] ?? '*').replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`);
        return [...this.#data.keys()].filter((k) => pattern.test(k));
      }
      case 'PEXPIRE':
      case 'EXPIRE':
        // Nothing outlives the launcher, so expiry is moot.
        return this.#data.has(args[0]!) ? 1 : 0;
      case 'HSET': {
        const hash = this.#hash(args[0]!, true)!;
        let added = 0;
        for (let i = 1; i + 1 < args.length; i += 2) {
          if (!hash.has(args[i]!)) added++;
          hash.set(args[i]!, args[i + 1]!);
        }
        return added;
      }
      case 'HGET':
        return this.#hash(args[0]!, false)?.get(args[1]!) ?? null;
      case 'HMGET': {
        const hash = this.#hash(args[0]!, false);
        return args.slice(1).map((f) => hash?.get(f) ?? null);
      }
      case 'HGETALL': {
        const hash = this.#hash(args[0]!, false);
        return hash ? [...hash].flat() : [];
      }
      case 'EVALSHA':
        // Scripts are not cached here; the bridge then sends the source with EVAL.
        return new RespError('NOSCRIPT No matching script. Please use EVAL.');
      case 'EVAL':
        return this.#eval(args);
      case 'PUBLISH':
        return this.#publish(args[0]!, argv[2] ?? Buffer.alloc(0));
      case 'SUBSCRIBE':
        for (const channel of args) {
          connection.channels.add(channel);
          connection.socket.write(encode(['subscribe', channel, connection.channels.size]));
        }
        return undefined as unknown as Reply;
      case 'UNSUBSCRIBE': {
        const channels = args.length > 0 ? args : [...connection.channels];
        if (channels.length === 0) return ['unsubscribe', null, 0];
        for (const channel of channels) {
          connection.channels.delete(channel);
          connection.socket.write(encode(['unsubscribe', channel, connection.channels.size]));
        }
        return undefined as unknown as Reply;
      }
      default:
        throw new RespError(`ERR unknown command '${name.toLowerCase()}' (the Redis stand-in knows only what the demo uses)`);
    }
  }

  #publish(channel: string, payload: Buffer): number {
    this.counts.published++;
    let receivers = 0;
    for (const c of this.#connections) {
      if (!c.channels.has(channel)) continue;
      receivers++;
      c.socket.write(encode(['message', channel, payload]));
    }
    return receivers;
  }

  /**
   * The `@cyb/vsm` bridge's push script, done natively: compare the base version with the stored
   * one, report a conflict with what it replaced, and write the state with the next version.
   */
  #eval(args: string[]): Reply {
    const [script, numKeys, key, base, ifConflict, state, ctx, writer, ts] = args;
    if (!script || !/HSET/.test(script) || !/version/.test(script) || numKeys !== '1' || key === undefined) {
      throw new RespError('ERR the Redis stand-in runs only the @cyb/vsm bridge push script');
    }
    const hash = this.#hash(key, false);
    const current = Number(hash?.get('version') ?? '0') || 0;
    let conflict = 0;
    let previous: (string | null)[] = [null, null, null];
    if (Number(base) !== current) {
      conflict = 1;
      previous = [hash?.get('state') ?? null, hash?.get('writer') ?? null, hash?.get('ts') ?? null];
      if (ifConflict === 'reject') return [0, current, conflict, ...previous];
    }
    const version = current + 1;
    const target = this.#hash(key, true)!;
    target.set('version', String(version));
    target.set('state', state ?? '');
    target.set('ctx', ctx ?? '');
    target.set('writer', writer ?? '');
    target.set('ts', ts ?? '');
    return [1, version, conflict, ...previous];
  }
}
