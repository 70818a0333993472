import type { startSpan } from '@cyb/core';

export type Attributes = NonNullable<NonNullable<Parameters<typeof startSpan>[1]>['attributes']>;

// Attribute names from the OpenTelemetry semantic conventions (messaging and database spans).

/**
 * A span name and what its attributes are made of, once per destination. `writeAttributes` writes them
 * into each new span's own object with constant keys. Handing `startSpan` an object to copy cost a
 * `for...in` and a megamorphic keyed store per key: about 2,100 instructions per published and
 * received message (callgrind, ioredis pub/sub on Node 20).
 */
export interface SpanSpec {
  name: string;
  /** `messaging.operation.type`. */
  operationType: 'send' | 'process';
  destination: string;
  /** The command (`xadd`, `publish`, `spublish`) of a PRODUCER span; `process` for a CONSUMER span. */
  operation: string;
  /** The subscribed pattern of a pattern subscription's CONSUMER span. */
  pattern: string | undefined;
}

const MAX_CACHED = 1024;
// Span specs by operation (producers) or by pattern, undefined for none (consumers), then by
// destination: no key is built per message.
type SpecTable<K> = Map<K, Map<string, SpanSpec>>;
const producerSpecs: SpecTable<string> = new Map();
const consumerSpecs: SpecTable<string | undefined> = new Map();
let cachedCount = 0;

function cached<K>(table: SpecTable<K>, group: K, destination: string, make: () => SpanSpec): SpanSpec {
  let byDestination = table.get(group);
  let spec = byDestination?.get(destination);
  if (spec === undefined) {
    spec = make();
    // Destinations are usually few; a program that makes one per message just stops being cached.
    if (cachedCount < MAX_CACHED) {
      if (byDestination === undefined) table.set(group, (byDestination = new Map()));
      byDestination.set(destination, spec);
      cachedCount++;
    }
  }
  return spec;
}

/** PRODUCER span `<operation> <destination>` (`send` for XADD, `publish`, `spublish`). */
export function producerSpec(verb: string, operation: string, destination: string): SpanSpec {
  return cached(producerSpecs, operation, destination, () => ({ name: `${verb} ${destination}`, operationType: 'send', destination, operation, pattern: undefined }));
}

/** CONSUMER span `process <pattern or destination>`. */
export function consumerSpec(destination: string, pattern: string | undefined): SpanSpec {
  return cached(consumerSpecs, pattern, destination, () => ({ name: `process ${pattern ?? destination}`, operationType: 'process', destination, operation: 'process', pattern }));
}

/** Writes the messaging attributes of `spec` into `into`, a new span's own attributes. */
export function writeAttributes(into: Attributes, spec: SpanSpec): void {
  into['messaging.system'] = 'redis';
  into['messaging.destination.name'] = spec.destination;
  into['messaging.operation.type'] = spec.operationType;
  into['messaging.operation.name'] = spec.operation;
  if (spec.pattern !== undefined) into['messaging.destination.template'] = spec.pattern;
}

/** Where a client connects, read once per client. */
export interface ServerInfo {
  namespace: string;
  address: string;
  port: number | undefined;
}

/** Where a client connects, from its options. */
export function serverInfo(options: unknown): ServerInfo {
  const o = (options !== null && typeof options === 'object' ? options : {}) as {
    host?: unknown;
    port?: unknown;
    path?: unknown;
    db?: unknown;
  };
  const namespace = String(typeof o.db === 'number' ? o.db : 0);
  if (typeof o.path === 'string' && o.path !== '') return { namespace, address: o.path, port: undefined };
  return { namespace, address: typeof o.host === 'string' ? o.host : 'localhost', port: typeof o.port === 'number' ? o.port : 6379 };
}

/** Writes a CLIENT span's database attributes into `into`, a new span's own attributes. */
export function writeServerAttributes(into: Attributes, server: ServerInfo, operation: string): void {
  into['db.system.name'] = 'redis';
  into['db.namespace'] = server.namespace;
  into['server.address'] = server.address;
  if (server.port !== undefined) into['server.port'] = server.port;
  into['db.operation.name'] = operation;
}
