import type { Attributes } from '@opentelemetry/api';
import type { EventRecord, LinkRecord, SpanRecord, SpanStatusRecord } from '../CybSpan.js';

// A finished span as bytes, for a Collector that holds its spans outside the JavaScript heap. Objects
// a long-lived store keeps from young spans survive every scavenge until they are old, and are copied
// on each: with a thousand spans held that copying cost a traced HTTP server more than the span itself.
// A record is one run of bytes instead, and the span object it was made from dies young.
//
// Layout: an 8-byte header (the record's size, padded to 4 bytes, then the offset of the next record of
// the same trace, -1 for none, both written by the store), a byte of flags saying which optional
// fields are present, then the fields as tagged values. The trace id is the collector's to keep.

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

// Places remembered by #lastNames: three fields, then attribute keys by position.
const NAME_PLACE = 0;
const KIND_PLACE = 1;
const STATUS_PLACE = 2;
const FIRST_KEY_PLACE = 3;
const PLACES = 35;

// Bits of a record's first byte: which optional fields follow.
const PARENT = 1;
const STATUS = 2;
const MESSAGE = 4;
const CODE = 8;

// Thrown inside `encodeInto` when the caller's buffer is full, and caught there.
const NO_ROOM = Symbol('no room');

const NO_VIEW = new DataView(new ArrayBuffer(0));
const EMPTY_RESOURCE: Readonly<Record<string, string | number>> = Object.freeze({});

function text(bytes: Uint8Array, start: number, length: number, wide: boolean): string {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset + start, wide ? 2 * length : length);
  return b.toString(wide ? 'utf16le' : 'latin1');
}

/**
 * Turns span records into bytes and back. `encode` writes into `scratch` (grown as needed) and returns
 * the record's size; `decode` reads a record from wherever the caller copied it.
 */
export class SpanCodec {
  /** Where `encode` writes; grown as needed. */
  scratch: Uint8Array = new Uint8Array(1024);
  #scratchView: DataView = new DataView(this.scratch.buffer);
  // Where the record being written goes: `scratch`, or the caller's buffer during `encodeInto`.
  #bytes: Uint8Array = this.scratch;
  #view: DataView = this.#scratchView;
  #pos = 0;
  #known = new Map<string, number>();
  #knownList: string[] = [];
  // The last string written at each place that takes names (span name, kind, status code, the n-th
  // attribute key), with its index: spans of one kind repeat them in the same order, and comparing
  // one string with the same string is cheaper than a lookup.
  #lastNames: (string | undefined)[] = new Array<string | undefined>(PLACES).fill(undefined);
  #lastIndexes: number[] = new Array<number>(PLACES).fill(0);
  #resources = new Map<object, number>();
  #resourceList: Readonly<Record<string, string | number>>[] = [];
  // Reading position of `decode`.
  #read = 0;
  #source: Uint8Array = this.scratch;
  #sourceView: DataView = NO_VIEW;

  /**
   * Writes `span` as a record at the start of `scratch`, leaving its header to the caller; returns the
   * record's size, header included, a multiple of 4. The trace id is not written: the collector keeps
   * it once per trace and hands it back to `decode`.
   */
  encode(span: SpanRecord): number {
    return this.#encode(span, this.scratch, this.#scratchView, 0);
  }

  /** Like `encode`, into `target` from `start`; -1 when the record does not fit before its end. */
  encodeInto(span: SpanRecord, target: Uint8Array, view: DataView, start: number): number {
    try {
      return this.#encode(span, target, view, start);
    } catch (err) {
      if (err === NO_ROOM) return -1;
      throw err;
    } finally {
      this.#bytes = this.scratch;
      this.#view = this.#scratchView;
    }
  }

  #encode(span: SpanRecord, target: Uint8Array, view: DataView, start: number): number {
    this.#bytes = target;
    this.#view = view;
    this.#pos = start + HEADER_BYTES + 1;
    // One byte says which of the fields most spans leave undefined are present.
    let present = 0;
    const { parentSpanId, module, function: fn, arity, file, line } = span;
    const status = span.status as SpanStatusRecord | undefined;
    const hasStatus = status !== null && typeof status === 'object';
    const message = hasStatus ? status.message : undefined;
    this.#value(span.spanId);
    if (parentSpanId !== undefined) {
      present |= PARENT;
      this.#value(parentSpanId);
    }
    this.#name(span.name, NAME_PLACE);
    this.#name(span.kind, KIND_PLACE);
    this.#value(span.timestamp);
    this.#value(span.durationUs);
    if (hasStatus) {
      present |= STATUS;
      this.#name(status.code, STATUS_PLACE);
    }
    if (message !== undefined) {
      present |= MESSAGE;
      this.#value(message);
    }
    if (module !== undefined || fn !== undefined || arity !== undefined || file !== undefined || line !== undefined) {
      present |= CODE;
      this.#value(module);
      this.#value(fn);
      this.#value(arity);
      this.#value(file);
      this.#value(line);
    }
    target[start + HEADER_BYTES] = present;
    this.#attributes(span.attributes);
    this.#links(span.links);
    this.#events(span.events);
    this.#resource(span.resource);
    const size = (this.#pos - start + 3) & ~3;
    this.#ensure(start + size - this.#pos);
    return size;
  }

  /** The record at `at` of `source`, a span of trace `traceId`, as a plain span record. */
  decode(source: Uint8Array, view: DataView, at: number, traceId: string): SpanRecord {
    this.#source = source;
    this.#sourceView = view;
    const present = source[at + HEADER_BYTES] as number;
    this.#read = at + HEADER_BYTES + 1;
    const spanId = this.#next() as string;
    const parentSpanId = (present & PARENT) === 0 ? undefined : (this.#next() as string | undefined);
    const name = this.#next() as string;
    const kind = this.#next() as SpanRecord['kind'];
    const timestamp = this.#next() as number;
    const durationUs = this.#next() as number;
    const code = ((present & STATUS) === 0 ? undefined : this.#next()) as SpanStatusRecord['code'] | undefined;
    const message = (present & MESSAGE) === 0 ? undefined : (this.#next() as string | undefined);
    const status: SpanStatusRecord = message === undefined ? { code: code ?? 'unset' } : { code: code ?? 'unset', message };
    let module: string | undefined;
    let fn: string | undefined;
    let arity: number | undefined;
    let file: string | undefined;
    let line: number | undefined;
    if ((present & CODE) !== 0) {
      module = this.#next() as string | undefined;
      fn = this.#next() as string | undefined;
      arity = this.#next() as number | undefined;
      file = this.#next() as string | undefined;
      line = this.#next() as number | undefined;
    }
    const attributes = this.#readAttributes();
    const links = this.#readLinks();
    const events = this.#readEvents();
    const resource = this.#readResource();
    // Not kept beyond the call: a log the collector has let go of must not stay reachable from here.
    this.#source = this.scratch;
    this.#sourceView = NO_VIEW;
    return { traceId, spanId, parentSpanId, name, kind, module, function: fn, arity, file, line, timestamp, durationUs, status, attributes, links, events, resource };
  }

  /** Forgets the tables of names and resources. Records written before can no longer be read. */
  reset(): void {
    this.#known.clear();
    this.#knownList = [];
    this.#resources.clear();
    this.#resourceList = [];
    this.#lastNames.fill(undefined);
  }

  #ensure(n: number): void {
    if (this.#pos + n > this.#bytes.length) this.#grow(n);
  }

  #grow(n: number): void {
    if (this.#bytes !== this.scratch) throw NO_ROOM;
    let size = this.scratch.length * 2;
    while (size < this.#pos + n) size *= 2;
    const bigger = new Uint8Array(size);
    bigger.set(this.scratch.subarray(0, this.#pos));
    this.scratch = this.#bytes = bigger;
    this.#scratchView = this.#view = new DataView(bigger.buffer);
  }

  #tag(tag: number): void {
    this.#ensure(1);
    this.#bytes[this.#pos++] = tag;
  }

  #u32(n: number): void {
    this.#ensure(4);
    this.#view.setUint32(this.#pos, n, true);
    this.#pos += 4;
  }

  #string(s: string): void {
    const length = s.length;
    this.#ensure(5 + 2 * length);
    const bytes = this.#bytes;
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
    this.#bytes[start] = WIDE;
    this.#view.setUint32(start + 1, length, true);
    let p = start + 5;
    for (let i = 0; i < length; i++, p += 2) this.#view.setUint16(p, s.charCodeAt(i), true);
    this.#pos = p;
  }

  /** A string likely to recur: by index once it is in the table. `place` is where it was met, if remembered. */
  #name(s: unknown, place = -1): void {
    let index: number | undefined;
    if (place >= 0 && place < PLACES && this.#lastNames[place] === s) index = this.#lastIndexes[place] as number;
    else {
      if (typeof s !== 'string') {
        this.#value(s);
        return;
      }
      index = this.#known.get(s);
      if (index === undefined) {
        if (this.#knownList.length >= MAX_KNOWN || s.length > MAX_KNOWN_LENGTH) {
          this.#string(s);
          return;
        }
        index = this.#knownList.length;
        this.#knownList.push(s);
        this.#known.set(s, index);
      }
      if (place >= 0 && place < PLACES) {
        this.#lastNames[place] = s;
        this.#lastIndexes[place] = index;
      }
    }
    this.#ensure(5);
    this.#bytes[this.#pos] = KNOWN;
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
        this.#bytes[this.#pos] = NUMBER;
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
    // for...in with an own-property check: V8 reads each value through the enum cache of the
    // object's map, where `attributes[key]` over Object.keys() is a megamorphic lookup per key.
    for (const key in attributes) {
      if (!hasOwn.call(attributes, key)) continue;
      const value = attributes[key];
      if (!isKept(value)) continue;
      this.#name(key, FIRST_KEY_PLACE + count);
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

const hasOwn = Object.prototype.hasOwnProperty;

function isKept(value: unknown): boolean {
  const t = typeof value;
  return t === 'string' || t === 'number' || t === 'boolean' || Array.isArray(value);
}
