import { extract } from '@cyb/core';
import { debug } from './internal/debug.js';
import { stats, tracingFailed } from './internal/stats.js';
import { injectFields, traceFieldName, type Context } from './internal/trace-fields.js';

// Envelope v1, byte by byte:
//   5 bytes   00 63 79 62 31   magic: NUL, "cyb", then the version digit "1"
//   n bytes   header           a JSON object in UTF-8 whose string members are trace fields
//   1 byte    0A               newline (JSON.stringify never writes a raw newline, so the first one ends the header)
//   rest      payload          the original message, byte for byte
// A leading NUL keeps ordinary text and JSON payloads from ever looking like an envelope.
const MAGIC = '\u0000cyb1';
const MAGIC_LENGTH = 5;
const NEWLINE = 0x0a;
const MAGIC_BYTES = Buffer.from(MAGIC, 'latin1');

/**
 * The longest envelope header a receiver reads, in bytes; a longer one makes the message "not an envelope".
 *
 * @example
 * const fits = Buffer.byteLength(JSON.stringify(headers)) <= MAX_ENVELOPE_HEADER;
 */
export const MAX_ENVELOPE_HEADER = 4096;

/** A received pub/sub message, envelope removed. */
export interface UnwrappedMessage<T extends string | Buffer = string | Buffer> {
  /** The original payload (the message itself when it was not an envelope), of the same type as the input. */
  payload: T;
  /** True when the message was a well-formed envelope. */
  enveloped: boolean;
  /** The trace fields the envelope carried (lower-case names), or undefined. */
  headers: Record<string, string> | undefined;
  /** The producer's context, or undefined (no envelope, or no valid trace fields in it). */
  context: Context | undefined;
}

export interface WrapEnvelopeOptions {
  /** The context to carry; default the active one. */
  context?: Context;
}

function notEnvelope<T extends string | Buffer>(message: T): UnwrappedMessage<T> {
  return { payload: message, enveloped: false, headers: undefined, context: undefined };
}

function malformed<T extends string | Buffer>(message: T, why: string): UnwrappedMessage<T> {
  stats.malformedEnvelopes++;
  debug('message passed through untouched: %s', why);
  return notEnvelope(message);
}

/** The trace fields of a header, or undefined when the header is not a JSON object. */
function parseHeader(text: string): Record<string, string> | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return undefined;
  // Copy only known trace fields with string values into a prototype-less record, so keys such as
  // `__proto__` or `constructor` in a hostile header can reach nothing.
  const headers: Record<string, string> = Object.create(null);
  for (const key of Object.keys(parsed)) {
    const name = traceFieldName(key);
    const value = (parsed as Record<string, unknown>)[key];
    if (name !== undefined && typeof value === 'string') headers[name] = value;
  }
  return headers;
}

function hasMagic(message: string | Buffer): boolean {
  if (typeof message === 'string') return message.startsWith(MAGIC);
  return message.length >= MAGIC_LENGTH && message[0] === 0 && MAGIC_BYTES.compare(message, 0, MAGIC_LENGTH, 0, MAGIC_LENGTH) === 0;
}

/**
 * Reads a pub/sub message that a traced client may have wrapped in an envelope: the original payload
 * (same type as `message`) and the producer's context. A message that is not a well-formed envelope is
 * returned untouched with `enveloped: false`. Never throws. For subscribers that are not traced.
 *
 * @example
 * sub.on('messageBuffer', (channel, message) => {
 *   const { payload, context } = unwrapEnvelope(message);
 *   handle(payload); // the bytes the publisher passed to publish()
 * });
 */
export function unwrapEnvelope<T extends string | Buffer>(message: T): UnwrappedMessage<T> {
  try {
    if (!hasMagic(message)) return notEnvelope(message);
    let headerText: string;
    let payload: T;
    if (typeof message === 'string') {
      const end = message.slice(MAGIC_LENGTH, MAGIC_LENGTH + MAX_ENVELOPE_HEADER + 1).indexOf('\n');
      if (end < 0) return malformed(message, 'no header end within the limit');
      headerText = message.slice(MAGIC_LENGTH, MAGIC_LENGTH + end);
      payload = message.slice(MAGIC_LENGTH + end + 1) as T;
    } else {
      const buffer = message as Buffer;
      const end = buffer.subarray(MAGIC_LENGTH, MAGIC_LENGTH + MAX_ENVELOPE_HEADER + 1).indexOf(NEWLINE);
      if (end < 0) return malformed(message, 'no header end within the limit');
      headerText = buffer.toString('utf8', MAGIC_LENGTH, MAGIC_LENGTH + end);
      payload = buffer.subarray(MAGIC_LENGTH + end + 1) as T;
    }
    const headers = parseHeader(headerText);
    if (headers === undefined) return malformed(message, 'header is not a JSON object');
    return { payload, enveloped: true, headers, context: extract(headers) };
  } catch (error) {
    tracingFailed('unwrapEnvelope', error);
    return notEnvelope(message);
  }
}

/**
 * Wraps `payload` in an envelope carrying `options.context` (default: the active context). A string
 * gives a string, a Buffer gives a Buffer. A traced client does this by itself on PUBLISH; this is for
 * publishers that go through another client.
 *
 * @example
 * await plainClient.publish('orders', wrapEnvelope(JSON.stringify(order)));
 */
export function wrapEnvelope<T extends string | Buffer>(payload: T, options: WrapEnvelopeOptions = {}): T {
  const head = MAGIC + JSON.stringify(injectFields(options.context)) + '\n';
  if (typeof payload === 'string') return (head + payload) as T;
  const headLength = Buffer.byteLength(head, 'utf8');
  const envelope = Buffer.allocUnsafe(headLength + payload.length);
  envelope.write(head, 0, 'utf8');
  payload.copy(envelope, headLength);
  return envelope as T;
}
