import type { startSpan } from '@cyb/core';

export type Attributes = NonNullable<NonNullable<Parameters<typeof startSpan>[1]>['attributes']>;

// Attribute names from the OpenTelemetry semantic conventions (messaging and database spans).

/** A span name with its attributes, made once per destination: `startSpan` copies the attributes. */
export interface SpanSpec {
  name: string;
  attributes: Attributes;
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
  return cached(producerSpecs, operation, destination, () => ({
    name: `${verb} ${destination}`,
    attributes: producerAttributes(destination, operation),
  }));
}

/** CONSUMER span `process <pattern or destination>`. */
export function consumerSpec(destination: string, pattern: string | undefined): SpanSpec {
  return cached(consumerSpecs, pattern, destination, () => ({
    name: `process ${pattern ?? destination}`,
    attributes: consumerAttributes(destination, pattern),
  }));
}

function producerAttributes(destination: string, operation: string): Attributes {
  return {
    'messaging.system': 'redis',
    'messaging.destination.name': destination,
    'messaging.operation.type': 'send',
    'messaging.operation.name': operation,
  };
}

function consumerAttributes(destination: string, pattern: string | undefined): Attributes {
  const attributes: Attributes = {
    'messaging.system': 'redis',
    'messaging.destination.name': destination,
    'messaging.operation.type': 'process',
    'messaging.operation.name': 'process',
  };
  if (pattern !== undefined) attributes['messaging.destination.template'] = pattern;
  return attributes;
}

/** The connection's attributes, computed once per client. */
export function serverAttributes(options: unknown): Attributes {
  const o = (options !== null && typeof options === 'object' ? options : {}) as {
    host?: unknown;
    port?: unknown;
    path?: unknown;
    db?: unknown;
  };
  const attributes: Attributes = { 'db.system.name': 'redis', 'db.namespace': String(typeof o.db === 'number' ? o.db : 0) };
  if (typeof o.path === 'string' && o.path !== '') {
    attributes['server.address'] = o.path;
  } else {
    attributes['server.address'] = typeof o.host === 'string' ? o.host : 'localhost';
    attributes['server.port'] = typeof o.port === 'number' ? o.port : 6379;
  }
  return attributes;
}
