import { createHash } from 'node:crypto';
import { hostname } from 'node:os';
import { performance } from 'node:perf_hooks';
import { trace, type Context } from '@opentelemetry/api';
import { contextWithSpan, currentSpan, extract, inject, startSpan, withContext, type CybSpan } from '@cyb/core';
import { debug, failures } from './internal/debug.js';
import { StateConflictError, type StateConflict, type StoredStateInfo } from './StateConflictError.js';

/**
 * The Redis commands the bridge uses. An ioredis client (`new Redis(url)`) fits; so does anything
 * with these three methods.
 */
export interface BridgeRedis {
  evalsha(sha1: string, numkeys: number, ...args: (string | number)[]): Promise<unknown>;
  eval(script: string, numkeys: number, ...args: (string | number)[]): Promise<unknown>;
  hmget(key: string, ...fields: string[]): Promise<(string | null)[]>;
}

/** Options of `createBridge()`. */
export interface BridgeOptions {
  /** Prefix of the Redis keys (each state is one hash). Default `'cyb:vsm:state:'`. */
  prefix?: string;
  /** Who this bridge writes as, stored with each state. Default `<hostname>:<pid>`. */
  writer?: string;
  /** Expire a state this long after its last push, in ms. Default: never. */
  ttlMs?: number;
  /** Called with each conflict, besides the push result and the span. A throw is caught and logged. */
  onConflict?: (conflict: StateConflict) => void;
}

/** Options of one `pushState()`. */
export interface PushOptions {
  /** The version this state was derived from; default the last version this bridge saw for the key, else 0. */
  baseVersion?: number;
  /** `'overwrite'` (default): last writer wins and the conflict is reported. `'reject'`: throw `StateConflictError`, write nothing. */
  ifConflict?: 'overwrite' | 'reject';
}

/** The outcome of a push. */
export interface PushResult {
  key: string;
  /** The version now in the store: this push's. */
  version: number;
  /** Set when the push overwrote a version it was not based on. */
  conflict?: StateConflict;
}

/** A state read from the store. */
export interface PulledState<S = unknown> {
  key: string;
  state: S;
  version: number;
  writer: string | undefined;
  /** Epoch milliseconds of the push. */
  updatedAt: number | undefined;
  /** The trace context of the push that wrote it; `withContext(pulled.context, fn)` continues that trace. */
  context: Context | undefined;
}

/** Counters of one bridge. */
export interface BridgeStats {
  pushes: number;
  pulls: number;
  conflicts: number;
  rejected: number;
}

/** A VSM state bridge: states pushed and pulled through Redis, with their trace context. */
export interface Bridge {
  /**
   * Stores `state` (JSON) under `key` with the next version and the current trace context, atomically.
   * Runs in the span `vsm.bridge push_state`.
   */
  pushState(key: string, state: unknown, options?: PushOptions): Promise<PushResult>;
  /**
   * Reads the state under `key`, or undefined. Runs in the span `vsm.bridge pull_state`: a child of the
   * active span when there is one (linked to the push), else a child of the push that wrote the state.
   */
  pullState<S = unknown>(key: string): Promise<PulledState<S> | undefined>;
  /** The last version this bridge pushed or pulled for `key`. */
  seenVersion(key: string): number | undefined;
  stats(): BridgeStats;
}

// The version check and the write are one script, so two pushes can never both build on the same
// version unnoticed. Returns {written, version, conflict, previous state, previous writer, previous ts}.
const PUSH_SCRIPT = `
local current = tonumber(redis.call('HGET', KEYS[1], 'version') or '0') or 0
local conflict = 0
local previous = {false, false, false}
if tonumber(ARGV[1]) ~= current then
  conflict = 1
  previous = redis.call('HMGET', KEYS[1], 'state', 'writer', 'ts')
  if ARGV[2] == 'reject' then
    return {0, current, conflict, previous[1], previous[2], previous[3]}
  end
end
local version = current + 1
redis.call('HSET', KEYS[1], 'version', version, 'state', ARGV[3], 'ctx', ARGV[4], 'writer', ARGV[5], 'ts', ARGV[6])
if tonumber(ARGV[7]) > 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[7])
end
return {1, version, conflict, previous[1], previous[2], previous[3]}
`;
const PUSH_SHA = createHash('sha1').update(PUSH_SCRIPT).digest('hex');

function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

function decodeState(raw: string | null | false | undefined): unknown {
  if (typeof raw !== 'string') return undefined;
  try {
    return JSON.parse(raw) as unknown;
  } catch {
    return undefined;
  }
}

function toNumber(raw: unknown): number | undefined {
  const n = typeof raw === 'number' ? raw : typeof raw === 'string' ? Number(raw) : NaN;
  return Number.isFinite(n) ? n : undefined;
}

function checkKey(key: unknown): asserts key is string {
  if (typeof key !== 'string' || key === '') throw new TypeError('bridge: key must be a non-empty string');
}

/**
 * Creates a state bridge over Redis (the research note's VSMBridge). Each push stores the state, a
 * version counter, the writer and the pusher's trace context; a pull in another process gets the state
 * and joins that trace. Concurrent pushes are last-writer-wins, but a push that overwrites a version it
 * never saw is reported as a conflict (in the result, on the span, to `onConflict`), with the state it
 * replaced, so nothing is lost silently.
 *
 * @example
 * import Redis from 'ioredis';
 * import { createBridge } from '@cyb/vsm';
 *
 * const bridge = createBridge(new Redis(process.env.REDIS_URL));
 * const { version, conflict } = await bridge.pushState('s3/budget', { cpu: 0.7 });
 * const pulled = await bridge.pullState<{ cpu: number }>('s3/budget'); // in another process
 */
export function createBridge(redis: BridgeRedis, options: BridgeOptions = {}): Bridge {
  if (redis === null || typeof redis !== 'object' || typeof redis.hmget !== 'function' || typeof redis.evalsha !== 'function') {
    throw new TypeError('createBridge: expected an ioredis client');
  }
  const { prefix = 'cyb:vsm:state:', writer = `${hostname()}:${process.pid}`, ttlMs = 0, onConflict } = options;
  if (!(Number.isFinite(ttlMs) && ttlMs >= 0)) throw new TypeError('createBridge: ttlMs must be a non-negative number');
  const seen = new Map<string, number>();
  const counters: BridgeStats = { pushes: 0, pulls: 0, conflicts: 0, rejected: 0 };

  async function runPush(args: (string | number)[]): Promise<unknown[]> {
    try {
      return (await redis.evalsha(PUSH_SHA, 1, ...args)) as unknown[];
    } catch (err) {
      // A server that has not seen the script yet (or flushed its cache) gets the source once.
      if (!/NOSCRIPT/.test(String((err as Error)?.message))) throw err;
      return (await redis.eval(PUSH_SCRIPT, 1, ...args)) as unknown[];
    }
  }

  function report(conflict: StateConflict, s: CybSpan): void {
    counters.conflicts++;
    try {
      s.setAttribute('vsm.bridge.conflict', true);
      s.addEvent('vsm.bridge.conflict', {
        'vsm.bridge.base_version': conflict.baseVersion,
        'vsm.bridge.current_version': conflict.currentVersion,
        'vsm.bridge.overwritten': conflict.overwritten,
        ...(conflict.previous.writer === undefined ? {} : { 'vsm.bridge.previous_writer': conflict.previous.writer }),
      });
    } catch (err) {
      failures.tracing++;
      debug('recording a conflict failed: %o', err);
    }
    if (onConflict) {
      try {
        onConflict(conflict);
      } catch (err) {
        debug('onConflict threw: %o', err);
      }
    }
  }

  return {
    async pushState(key, state, pushOptions = {}) {
      checkKey(key);
      const text = JSON.stringify(state);
      if (text === undefined) throw new TypeError('pushState: state must be JSON-serialisable');
      const { ifConflict = 'overwrite' } = pushOptions;
      if (ifConflict !== 'overwrite' && ifConflict !== 'reject') throw new TypeError(`pushState: ifConflict must be 'overwrite' or 'reject'`);
      const baseVersion = pushOptions.baseVersion ?? seen.get(key) ?? 0;
      // A span of its own even with no collector in this process: its id is what the stored context
      // names, so a puller elsewhere still joins the right trace.
      const s = startSpan('vsm.bridge push_state', {
        kind: 'producer',
        attributes: { 'db.system.name': 'redis', 'vsm.bridge.key': key, 'vsm.bridge.base_version': baseVersion },
      });
      const push = async (): Promise<PushResult> => {
        const carrier: Record<string, string> = {};
        try {
          inject(carrier);
        } catch (err) {
          failures.tracing++;
          debug('inject failed: %o', err);
        }
        const reply = await runPush([prefix + key, baseVersion, ifConflict, text, JSON.stringify(carrier), writer, Date.now(), ttlMs]);
        const written = toNumber(reply[0]) === 1;
        const version = toNumber(reply[1]) ?? 0;
        seen.set(key, version);
        s.setAttribute('vsm.bridge.version', version);
        let conflict: StateConflict | undefined;
        if (toNumber(reply[2]) === 1) {
          const previous: StoredStateInfo = {
            state: decodeState(reply[3] as string | null),
            writer: typeof reply[4] === 'string' ? reply[4] : undefined,
            updatedAt: toNumber(reply[5]),
          };
          conflict = {
            key,
            baseVersion,
            currentVersion: written ? version - 1 : version,
            version: written ? version : undefined,
            overwritten: written,
            previous,
          };
          report(conflict, s);
        }
        if (!written) {
          counters.rejected++;
          throw new StateConflictError(conflict as StateConflict);
        }
        counters.pushes++;
        return conflict === undefined ? { key, version } : { key, version, conflict };
      };
      return withContext(contextWithSpan(s), push).then(
        (result) => {
          s.end();
          return result;
        },
        (err: unknown) => {
          s.fail(err);
          s.end();
          throw err;
        },
      );
    },

    async pullState<S>(key: string): Promise<PulledState<S> | undefined> {
      checkKey(key);
      const active = currentSpan();
      const attributes = { 'db.system.name': 'redis', 'vsm.bridge.key': key };
      // Inside a span, the pull is part of that work and links to the push. Outside any span it
      // continues the pusher's trace, which is only known once the state is read: the span is then
      // opened after the read, back-dated to when the read began.
      const early = active !== undefined ? startSpan('vsm.bridge pull_state', { kind: 'consumer', attributes }) : undefined;
      const startedAt = nowMs();
      let s: CybSpan | undefined = early;
      const read = async (): Promise<PulledState<S> | undefined> => {
        const [version, stateText, ctxText, storedWriter, ts] = await redis.hmget(prefix + key, 'version', 'state', 'ctx', 'writer', 'ts');
        let context: Context | undefined;
        if (typeof ctxText === 'string') {
          try {
            context = extract(JSON.parse(ctxText) as unknown);
          } catch (err) {
            debug('stored context of %s unreadable: %o', key, err);
          }
        }
        const pushed = context === undefined ? undefined : trace.getSpanContext(context);
        if (s === undefined) {
          s = startSpan('vsm.bridge pull_state', { kind: 'consumer', attributes, parent: context ?? null, startTime: startedAt });
        } else if (pushed !== undefined) {
          s.addLink({ context: pushed });
        }
        const v = toNumber(version);
        if (v === undefined) {
          s.setAttribute('vsm.bridge.found', false);
          return undefined;
        }
        let state: S;
        try {
          state = JSON.parse(stateText ?? 'null') as S;
        } catch (err) {
          throw new SyntaxError(`state "${key}" (version ${v}) is not valid JSON`, { cause: err });
        }
        seen.set(key, v);
        counters.pulls++;
        s.setAttribute('vsm.bridge.found', true);
        s.setAttribute('vsm.bridge.version', v);
        return { key, state, version: v, writer: storedWriter ?? undefined, updatedAt: toNumber(ts), context };
      };
      try {
        const result = early === undefined ? await read() : await withContext(contextWithSpan(early), read);
        s?.end(early === undefined ? nowMs() : undefined);
        return result;
      } catch (err) {
        s ??= startSpan('vsm.bridge pull_state', { kind: 'consumer', attributes, parent: null, startTime: startedAt });
        s.fail(err);
        s.end(early === undefined ? nowMs() : undefined);
        throw err;
      }
    },

    seenVersion(key) {
      return seen.get(key);
    },

    stats() {
      return { ...counters };
    },
  };
}
