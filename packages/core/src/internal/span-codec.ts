import type { Attributes } from '@opentelemetry/api';
import type { EventRecord, LinkRecord, SpanRecord, SpanStatusRecord } from '../CybSpan.js';

// A finished span as bytes, for a Collector that holds its spans outside the JavaScript heap. Objects
// a long-lived store keeps from young spans survive every scavenge until they are old, and are copied
// on each: with a thousand spans held that copying cost a traced HTTP server more than the span itself.
// A record is one run of bytes instead, and the span object it was made from dies young.
//
// Layout: an 8-byte header (the record's size, padded to 4 bytes, then the offset of the next record of
// the same trace, -1 for none, both written by the store), then every field as a tagged value.

/** Bytes before a record's fields: its size and the offset of the next record of its trace. */
const HEADER_BYTES = 8;

const UNDEFINED = 0;
const NULL = 1;
const TRUE = 2;
const FALSE = 3;
const NUMBER = 4;
const NARROW = 5; // a string of character codes below 256, a byte each
const WIDE = 6; // any other string, as UTF-16 code units
const KNOWN = 7; // a string of the codec's table, by index
const ARRAY = 8;

// Names that recur (attribute keys, span names, kinds, status codes) are written once into a table
// and then by index. The table is bounded, in entries and in the length of what it takes.
const MAX_KNOWN = 4096;
const MAX_KNOWN_LENGTH = 128;
// Resource objects are shared by every span of a process; the codec keeps a few by identity.
const MAX_RESOURCES = 64;

const EMPTY_RESOURCE: Readonly<Record<string, string | number>> = Object.freeze({});

function text(bytes: Uint8Array, start: number, length: number, wide: boolean): string {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset + start, wide ? 2 * length : length);
  return b.toString(wide ? 'utf16le' : 'latin1');
}

/**
 * Turns span records into bytes and back. `encode` writes into `bytes` (grown as needed) and returns
 * the record's size; `decode` reads a record from wherever the caller copied it.
 */
export class SpanCodec {
  bytes = new Uint8Array(1024);
  #view = new DataView(this.bytes.buffer);
  #pos = 0;
  #known = new Map<string, number>();
  #knownList: string[] = [];
  #resources = new Map<object, number>();
  #resourceList: Readonly<Record<string, string | number>>[] = [];
  // Reading position of `decode`.
  #read = 0;
  #source: Uint8Array = this.bytes;
  #sourceView: DataView = this.#view;

  /** Writes `span` at the start of `bytes`, header included; returns the record's size. */
  encode(span: SpanRecord): number {
    this.#pos = HEADER_BYTES;
    this.#value(span.traceId);
    this.#value(span.spanId);
    this.#value(span.parentSpanId);
    this.#name(span.name);
    this.#name(span.kind);
    this.#value(span.module);
    this.#value(span.function);
    this.#value(span.arity);
    this.#value(span.file);
    this.#value(span.line);
    this.#value(span.timestamp);
    this.#value(span.durationUs);
    const status = span.status as SpanStatusRecord | undefined;
    if (status !== null && typeof status === 'object') {
      this.#name(status.code);
      this.#value(status.message);
    } else {
      this.#value(undefined);
      this.#value(undefined);
    }
    this.#attributes(span.attributes);
    this.#links(span.links);
    this.#events(span.events);
    this.#resource(span.resource);
    const size = (this.#pos + 3) & ~3;
    this.#ensure(size - this.#pos);
    this.#view.setUint32(0, size, true);
    this.#view.setInt32(4, -1, true);
    return size;
  }

  /** The record at `at` of `source`, as a plain span record. */
  decode(source: Uint8Array, view: DataView, at: number): SpanRecord {
    this.#source = source;
    this.#sourceView = view;
    this.#read = at + HEADER_BYTES;
    const traceId = this.#next() as string;
    const spanId = this.#next() as string;
    const parentSpanId = this.#next() as string | undefined;
    const name = this.#next() as string;
    const kind = this.#next() as SpanRecord['kind'];
    const module = this.#next() as string | undefined;
    const fn = this.#next() as string | undefined;
    const arity = this.#next() as number | undefined;
    const file = this.#next() as string | undefined;
    const line = this.#next() as number | undefined;
    const timestamp = this.#next() as number;
    const durationUs = this.#next() as number;
    const code = this.#next() as SpanStatusRecord['code'] | undefined;
    const message = this.#next() as string | undefined;
    const status: SpanStatusRecord = message === undefined ? { code: code ?? 'unset' } : { code: code ?? 'unset', message };
    const attributes = this.#readAttributes();
    const links = this.#readLinks();
    const events = this.#readEvents();
    const resource = this.#readResource();
    this.#source = this.bytes;
    this.#sourceView = this.#view;
    return { traceId, spanId, parentSpanId, name, kind, module, function: fn, arity, file, line, timestamp, durationUs, status, attributes, links, events, resource };
  }

  /** Forgets the tables of names and resources. Records written before can no longer be read. */
  reset(): void {
    this.#known.clear();
    this.#knownList = [];
    this.#resources.clear();
    this.#resourceList = [];
  }

  #ensure(n: number): void {
    if (this.#pos + n <= this.bytes.length) return;
    let size = this.bytes.length * 2;
    while (size < this.#pos + n) size *= 2;
    const bigger = new Uint8Array(size);
    bigger.set(this.bytes.subarray(0, this.#pos));
    this.bytes = bigger;
    this.#view = new DataView(bigger.buffer);
  }

  #tag(tag: number): void {
    this.#ensure(1);
    this.bytes[this.#pos++] = tag;
  }

  #u32(n: number): void {
    this.#ensure(4);
    this.#view.setUint32(this.#pos, n, true);
    this.#pos += 4;
  }

  #string(s: string): void {
    const length = s.length;
    this.#ensure(5 + 2 * length);
    const bytes = this.bytes;
    const start = this.#pos;
    let p = start + 5;
    for (let i = 0; i < length; i++) {
      const c = s.charCodeAt(i);
      if (c > 255) {
        this.#wide(s, start);
        return;
      }
      bytes[p++] = c;
    }
    bytes[start] = NARROW;
    this.#view.setUint32(start + 1, length, true);
    this.#pos = p;
  }

  #wide(s: string, start: number): void {
    const length = s.length;
    this.bytes[start] = WIDE;
    this.#view.setUint32(start + 1, length, true);
    let p = start + 5;
    for (let i = 0; i < length; i++, p += 2) this.#view.setUint16(p, s.charCodeAt(i), true);
    this.#pos = p;
  }

  /** A string likely to recur: by index once it is in the table. */
  #name(s: unknown): void {
    if (typeof s !== 'string') {
      this.#value(s);
      return;
    }
    let index = this.#known.get(s);
    if (index === undefined) {
      if (this.#knownList.length >= MAX_KNOWN || s.length > MAX_KNOWN_LENGTH) {
        this.#string(s);
        return;
      }
      index = this.#knownList.length;
      this.#knownList.push(s);
      this.#known.set(s, index);
    }
    this.#ensure(5);
    this.bytes[this.#pos] = KNOWN;
    this.#view.setUint32(this.#pos + 1, index, true);
    this.#pos += 5;
  }

  /** One value; anything that is not an attribute value (objects, functions, bigints) is written as undefined. */
  #value(v: unknown, depth = 0): void {
    switch (typeof v) {
      case 'string':
        this.#string(v);
        return;
      case 'number':
        this.#ensure(9);
        this.bytes[this.#pos] = NUMBER;
        this.#view.setFloat64(this.#pos + 1, v, true);
        this.#pos += 9;
        return;
      case 'boolean':
        this.#tag(v ? TRUE : FALSE);
        return;
      default:
        if (v === null) this.#tag(NULL);
        else if (Array.isArray(v) && depth === 0) {
          this.#tag(ARRAY);
          this.#u32(v.length);
          for (let i = 0; i < v.length; i++) this.#value(v[i], 1);
        } else this.#tag(UNDEFINED);
    }
  }

  /** The pairs of `attributes` whose value can be kept, behind their count. */
  #attributes(attributes: Attributes | undefined): void {
    const countAt = this.#pos;
    this.#u32(0);
    if (attributes === null || typeof attributes !== 'object') return;
    let count = 0;
    for (const key of Object.keys(attributes)) {
      const value = attributes[key];
      if (!isKept(value)) continue;
      this.#name(key);
      this.#value(value);
      count++;
    }
    this.#view.setUint32(countAt, count, true);
  }

  #optionalAttributes(attributes: Attributes | undefined): void {
    if (attributes === null || typeof attributes !== 'object') this.#tag(FALSE);
    else {
      this.#tag(TRUE);
      this.#attributes(attributes);
    }
  }

  #links(links: readonly LinkRecord[] | undefined): void {
    if (!Array.isArray(links)) {
      this.#u32(0);
      return;
    }
    this.#u32(links.length);
    for (const l of links as readonly (LinkRecord | undefined)[]) {
      this.#value(l?.traceId);
      this.#value(l?.spanId);
      this.#optionalAttributes(l?.attributes);
    }
  }

  #events(events: readonly EventRecord[] | undefined): void {
    if (!Array.isArray(events)) {
      this.#u32(0);
      return;
    }
    this.#u32(events.length);
    for (const e of events as readonly (EventRecord | undefined)[]) {
      this.#name(e?.name);
      this.#value(e?.timestamp);
      this.#optionalAttributes(e?.attributes);
    }
  }

  #resource(resource: Readonly<Record<string, string | number>> | undefined): void {
    if (resource === null || typeof resource !== 'object') {
      this.#tag(UNDEFINED);
      return;
    }
    let index = this.#resources.get(resource);
    if (index === undefined && this.#resourceList.length < MAX_RESOURCES) {
      index = this.#resourceList.length;
      this.#resourceList.push(resource);
      this.#resources.set(resource, index);
    }
    if (index === undefined) {
      this.#tag(ARRAY); // written out in full
      this.#attributes(resource);
    } else {
      this.#tag(KNOWN);
      this.#u32(index);
    }
  }

  #next(): unknown {
    const source = this.#source;
    const view = this.#sourceView;
    const tag = source[this.#read++];
    switch (tag) {
      case UNDEFINED:
        return undefined;
      case NULL:
        return null;
      case TRUE:
        return true;
      case FALSE:
        return false;
      case NUMBER: {
        const n = view.getFloat64(this.#read, true);
        this.#read += 8;
        return n;
      }
      case NARROW:
      case WIDE: {
        const length = view.getUint32(this.#read, true);
        const s = text(source, this.#read + 4, length, tag === WIDE);
        this.#read += 4 + (tag === WIDE ? 2 * length : length);
        return s;
      }
      case KNOWN: {
        const index = view.getUint32(this.#read, true);
        this.#read += 4;
        return this.#knownList[index];
      }
      case ARRAY: {
        const length = view.getUint32(this.#read, true);
        this.#read += 4;
        const out: unknown[] = [];
        for (let i = 0; i < length; i++) out.push(this.#next());
        return out;
      }
      default:
        throw new RangeError(`span record corrupt: tag ${String(tag)} at ${this.#read - 1}`);
    }
  }

  #count(): number {
    const n = this.#sourceView.getUint32(this.#read, true);
    this.#read += 4;
    return n;
  }

  #readAttributes(): Attributes {
    const out: Attributes = {};
    for (let n = this.#count(); n > 0; n--) {
      const key = this.#next() as string;
      const value = this.#next() as Attributes[string];
      // A key read from a record is data: `__proto__` becomes an own property, never the prototype.
      if (key === '__proto__') Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
      else out[key] = value;
    }
    return out;
  }

  #readOptionalAttributes(): Attributes | undefined {
    return this.#next() === true ? this.#readAttributes() : undefined;
  }

  #readLinks(): LinkRecord[] {
    const n = this.#count();
    if (n === 0) return [];
    const out: LinkRecord[] = [];
    for (let i = 0; i < n; i++) {
      const link: LinkRecord = { traceId: this.#next() as string, spanId: this.#next() as string };
      const attributes = this.#readOptionalAttributes();
      if (attributes !== undefined) link.attributes = attributes;
      out.push(link);
    }
    return out;
  }

  #readEvents(): EventRecord[] {
    const n = this.#count();
    if (n === 0) return [];
    const out: EventRecord[] = [];
    for (let i = 0; i < n; i++) {
      const event: EventRecord = { name: this.#next() as string, timestamp: this.#next() as number };
      const attributes = this.#readOptionalAttributes();
      if (attributes !== undefined) event.attributes = attributes;
      out.push(event);
    }
    return out;
  }

  #readResource(): Readonly<Record<string, string | number>> {
    const tag = this.#source[this.#read++];
    if (tag === KNOWN) return this.#resourceList[this.#count()] ?? EMPTY_RESOURCE;
    if (tag === ARRAY) return this.#readAttributes() as Record<string, string | number>;
    return EMPTY_RESOURCE;
  }
}

function isKept(value: unknown): boolean {
  const t = typeof value;
  return t === 'string' || t === 'number' || t === 'boolean' || Array.isArray(value);
}
