import type { IncomingMessage, OutgoingMessage } from 'node:http';
import type { HeaderList } from './options.js';

/** At most this many values of one header are recorded; a client may repeat a header thousands of times. */
export const MAX_HEADER_VALUES = 16;

export function cap(value: string, max: number): string {
  return value.length > max ? value.slice(0, max) : value;
}

type AttributeSink = { setAttribute(key: string, value: string[]): unknown };

/**
 * Records the allow-listed request headers as `http.request.header.<name>` string arrays, one entry per
 * occurrence on the wire (from `rawHeaders`, so repeated headers are not joined), each value capped.
 */
export function recordRequestHeaders(span: AttributeSink, req: IncomingMessage, list: HeaderList, maxLength: number): void {
  const raw = req.rawHeaders;
  let found: (string[] | undefined)[] | undefined;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const at = list.index.get(raw[i].toLowerCase());
    if (at === undefined) continue;
    found ??= new Array<string[] | undefined>(list.names.length);
    const values = (found[at] ??= []);
    if (values.length < MAX_HEADER_VALUES) values.push(cap(raw[i + 1], maxLength));
  }
  if (found === undefined) return;
  for (let j = 0; j < found.length; j++) {
    const values = found[j];
    if (values !== undefined) span.setAttribute(list.keys[j], values);
  }
}

/** Records the allow-listed response headers as `http.response.header.<name>` string arrays. */
export function recordResponseHeaders(span: AttributeSink, res: OutgoingMessage, list: HeaderList, maxLength: number): void {
  for (let j = 0; j < list.names.length; j++) {
    const value = res.getHeader(list.names[j]);
    if (value === undefined) continue;
    const values = Array.isArray(value) ? value.slice(0, MAX_HEADER_VALUES).map((v) => cap(String(v), maxLength)) : [cap(String(value), maxLength)];
    span.setAttribute(list.keys[j], values);
  }
}
