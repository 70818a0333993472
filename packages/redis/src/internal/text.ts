const bufferText = Buffer.prototype.toString as (this: Buffer, encoding: 'utf8') => string;

/**
 * A stream name, field or reply as text: strings as they are, Buffers decoded as UTF-8 (what
 * `String(buffer)` gives), anything else through `String()`. Buffers are decoded with Buffer's own
 * method: `String(buffer)` goes through the generic conversion (`Symbol.toPrimitive`, `toString`
 * looked up on the object), about 1,400 instructions a field in a traced stream consumer.
 */
export function text(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value instanceof Buffer) return bufferText.call(value, 'utf8');
  return String(value);
}
