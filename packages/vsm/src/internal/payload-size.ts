/**
 * The payload's size in bytes as it would travel: raw bytes as they are, strings as UTF-8, anything
 * else as its JSON text. Undefined when it has no JSON form (a cycle, a BigInt).
 */
export function payloadSize(payload: unknown): number | undefined {
  if (payload === undefined || payload === null) return 0;
  if (typeof payload === 'string') return Buffer.byteLength(payload);
  if (ArrayBuffer.isView(payload)) return payload.byteLength;
  if (payload instanceof ArrayBuffer) return payload.byteLength;
  try {
    const text = JSON.stringify(payload);
    return text === undefined ? undefined : Buffer.byteLength(text);
  } catch {
    return undefined;
  }
}
