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
// A header value JSON must escape, or one that is not ASCII. (Control characters are the point here.)
// eslint-disable-next-line no-control-regex
const NEEDS_ESCAPE = /["\\\u0000-\u001f\u007f-\uffff]/;
// Fields whose values inject writes from checked hex ids and fixed characters only.
const HEX_BUILT = new Set(['traceparent', 'b3', 'x-b3-traceid', 'x-b3-spanid', 'x-b3-parentspanid', 'x-b3-sampled', 'x-b3-flags']);
// What sends a header to JSON.parse: an escape, or a control character JSON.parse would refuse.
// eslint-disable-next-line no-control-regex
const NOT_FLAT = /[\\\u0000-\u001f]/;

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

/**
 * The header as written by `wrapEnvelope` (a flat object of strings without escapes, no white space)
 * read with indexOf; undefined for anything else, which JSON.parse then reads.
 */
function parseFlatHeader(text: string): Record<string, string> | undefined {
  if (text.charCodeAt(0) !== 0x7b /* { */ || text.charCodeAt(text.length - 1) !== 0x7d /* } */ || NOT_FLAT.test(text)) return undefined;
  // A plain object: only the trace field names traceFieldName returns become keys. V8 keeps a
  // prototype-less one in dictionary mode, where each write and each of extract's reads costs several
  // hundred instructions.
  const headers: Record<string, string> = {};
  if (text.length === 2) return headers;
  let at = 1;
  for (;;) {
    if (text.charCodeAt(at) !== 0x22) return undefined;
    const keyEnd = text.indexOf('"', at + 1);
    if (keyEnd < 0 || text.charCodeAt(keyEnd + 1) !== 0x3a /* : */ || text.charCodeAt(keyEnd + 2) !== 0x22) return undefined;
    const valueEnd = text.indexOf('"', keyEnd + 3);
    if (valueEnd < 0) return undefined;
    const name = traceFieldName(text.slice(at + 1, keyEnd));
    if (name !== undefined) headers[name] = text.slice(keyEnd + 3, valueEnd);
    const next = text.charCodeAt(valueEnd + 1);
    if (next === 0x7d) return valueEnd + 2 === text.length ? headers : undefined;
    if (next !== 0x2c /* , */) return undefined;
    at = valueEnd + 2;
  }
}

/** The trace fields of a header, or undefined when the header is not a JSON object. */
function parseHeader(text: string): Record<string, string> | undefined {
  const flat = parseFlatHeader(text);
  if (flat !== undefined) return flat;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return undefined;
  // Copy only known trace fields with string values, so keys such as `__proto__` or `constructor` in a
  // hostile header can reach nothing.
  const headers: Record<string, string> = {};
  for (const key of Object.keys(parsed)) {
    const name = traceFieldName(key);
    const value = (parsed as Record<string, unknown>)[key];
    if (name !== undefined && typeof value === 'string') headers[name] = value;
  }
  return headers;
}

// Past the magic, the header and its newline: the furthest a header end is looked for.
const SEARCH_END = MAGIC_LENGTH + MAX_ENVELOPE_HEADER + 1;

/**
 * Where the header's newline is in `message`, or -1 when there is none within the limit. A message
 * no longer than the limit is searched as it is; a longer one only up to the limit, through a slice
 * or a view, so a message without a newline costs no more than the limit.
 */
function headerEnd(message: string | Buffer): number {
  if (typeof message === 'string') {
    return (message.length <= SEARCH_END ? message : message.slice(0, SEARCH_END)).indexOf('\n', MAGIC_LENGTH);
  }
  return (message.length <= SEARCH_END ? message : message.subarray(0, SEARCH_END)).indexOf(NEWLINE, MAGIC_LENGTH);
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
    const end = headerEnd(message);
    if (end < 0) return malformed(message, 'no header end within the limit');
    if (typeof message === 'string') {
      headerText = message.slice(MAGIC_LENGTH, end);
      payload = message.slice(end + 1) as T;
    } else {
      headerText = (message as Buffer).toString('utf8', MAGIC_LENGTH, end);
      payload = (message as Buffer).subarray(end + 1) as T;
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
  const fields = injectFields(options.context);
  // The header as JSON.stringify would write it. Values that are printable ASCII without `"` or `\`
  // go in as they are, any other through JSON.stringify; traceparent and b3 are always such values
  // (inject builds them from checked hex ids), so only the others are looked at.
  let head = MAGIC + '{';
  let ascii = true;
  let first = true;
  // Own keys only: a polluted Object.prototype must not reach the wire.
  for (const name of Object.keys(fields)) {
    const value = fields[name] as string;
    const plain = HEX_BUILT.has(name) || !NEEDS_ESCAPE.test(value);
    if (!plain) ascii = false;
    head += (first ? '"' : ',"') + name + (plain ? '":"' + value + '"' : '":' + JSON.stringify(value));
    first = false;
  }
  head += '}\n';
  if (typeof payload === 'string') return (head + payload) as T;
  const headLength = ascii ? head.length : Buffer.byteLength(head, 'utf8');
  const envelope = Buffer.allocUnsafe(headLength + payload.length);
  envelope.write(head, 0, ascii ? 'latin1' : 'utf8');
  envelope.set(payload, headLength);
  return envelope as T;
}
