/** Span attributes as this package writes them: flat, primitive values. */
export type Attributes = Record<string, string | number | boolean>;

// Keys are usually short identifiers; a key that is not valid UTF-8 (a binary id) has no faithful
// string form, so it is left out rather than recorded as replacement characters.
const utf8 = new TextDecoder('utf-8', { fatal: true });

export function keyText(key: unknown): string | undefined {
  if (typeof key === 'string') return key;
  if (key instanceof Uint8Array) {
    try {
      return utf8.decode(key);
    } catch {
      return undefined;
    }
  }
  return undefined;
}

/** Kafka offsets are int64 sent as decimal strings; a number while exact, else the string. */
export function offsetValue(offset: string): number | string {
  const n = Number(offset);
  return Number.isSafeInteger(n) ? n : offset;
}

/** Orders two decimal offset strings without BigInt: longer is larger, same length compares by text. */
export function compareOffsets(a: string, b: string): number {
  if (a.length !== b.length) return a.length - b.length;
  return a < b ? -1 : a > b ? 1 : 0;
}

export function baseAttributes(topic: string, operation: 'send' | 'receive' | 'process'): Attributes {
  return {
    'messaging.system': 'kafka',
    'messaging.destination.name': topic,
    'messaging.operation.type': operation,
    'messaging.operation.name': operation,
  };
}
