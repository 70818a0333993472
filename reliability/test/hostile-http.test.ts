// Hostile HTTP headers written byte for byte on raw sockets (CR, LF, NUL, non-ASCII, huge, repeated,
// thousands of tracestate members, prototype keys) to two Express apps, one with traceHttp() and one
// without. Whatever Node accepts or refuses, both must answer byte for byte the same; the traced one
// must never adopt a parent that was not sent, and nothing may reach Object.prototype.
import assert from 'node:assert/strict';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import express, { type Request, type Response } from 'express';
import fc from 'fast-check';
import { Collector, inject, propagationStats, type SpanRecord } from '@cyb/core';
import { traceHttp } from '@cyb/http';
import { assertPrototypeClean, prototypeSnapshot, sleep, waitUntil } from './helpers.js';
import { hostileHeaderList, hostileKey, manyMembers, parseTraceparent, validTraceparent, hex } from './hostile.js';

const MAX_HEADER_SIZE = 512 * 1024;

function echo(req: Request, res: Response): void {
  res.json({ method: req.method, url: req.url, headers: req.headers, rawHeaders: req.rawHeaders, nullProto: Object.getPrototypeOf(req.headers) === null });
}

async function serve(app: express.Express): Promise<{ server: http.Server; port: number }> {
  // Room for thousands of tracestate members: the test is about the tracer, not Node's header limit.
  const server = http.createServer({ maxHeaderSize: MAX_HEADER_SIZE }, app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port };
}

/** Writes `bytes` on a new connection; resolves with everything the server wrote until it closed. */
function raw(port: number, bytes: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', (error: NodeJS.ErrnoException) => (error.code === 'ECONNRESET' ? undefined : reject(error)));
    socket.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
    socket.setTimeout(3000, () => socket.destroy());
    // Not end(): a half-closed client makes Node abort a request in flight; `Connection: close` ends it.
    socket.write(bytes);
  });
}

/** Without the Date header, the only thing two identical servers may answer differently. */
function normalise(reply: string): string {
  return reply.replace(/\r\nDate: [^\r]*/g, '');
}

/** A header value on the wire: text (sent as UTF-8) or raw bytes. */
const wireValue = fc.oneof(
  { arbitrary: fc.uint8Array({ maxLength: 120 }).map((b) => Buffer.from(b)), weight: 1 },
  { arbitrary: fc.string({ maxLength: 60, unit: fc.constantFrom('\r', '\n', '\0', '\t', ' ', ':', 'a', '\u00e9', '\u2028', '\x7f', ',', '=') }).map((t) => Buffer.from(t, 'latin1')), weight: 1 },
);

describe('hostile HTTP headers on raw sockets, traced and untraced side by side', () => {
  const collector = new Collector({ maxTraces: 20_000, maxSpansPerTrace: 5 });
  let traced: { server: http.Server; port: number };
  let plain: { server: http.Server; port: number };
  const proto = prototypeSnapshot();

  before(async () => {
    collector.start();
    const tracedApp = express();
    tracedApp.use(traceHttp());
    tracedApp.get('/context', (_req, res) => {
      const carrier: Record<string, string> = {};
      inject(carrier);
      res.json(carrier);
    });
    tracedApp.use(echo);
    const plainApp = express();
    plainApp.use(echo);
    traced = await serve(tracedApp);
    plain = await serve(plainApp);
  });
  after(async () => {
    collector.stop();
    for (const s of [traced.server, plain.server]) {
      s.closeAllConnections();
      await new Promise<void>((resolve) => s.close(() => resolve()));
    }
  });

  let requestNo = 0;
  /** Sends one request, built from `head` lines and `extra` raw header bytes, to both servers. */
  async function both(lines: Buffer[]): Promise<{ path: string; traced: string; plain: string }> {
    const path = `/echo/${++requestNo}`;
    const bytes = Buffer.concat([Buffer.from(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n`, 'latin1'), ...lines, Buffer.from('\r\n', 'latin1')]);
    const [t, p] = await Promise.all([raw(traced.port, bytes), raw(plain.port, bytes)]);
    return { path, traced: t, plain: p };
  }

  async function serverSpan(path: string): Promise<SpanRecord> {
    let found: SpanRecord[] = [];
    await waitUntil(() => (found = collector.traces().flatMap((t) => t.spans).filter((s) => s.kind === 'server' && s.attributes['url.path'] === path)).length > 0, `the span of ${path}`, 3000);
    await sleep(5);
    assert.equal(found.length, 1, `one server span for ${path}`);
    return found[0]!;
  }

  it('any header names and values: the same answer traced and untraced, no adopted stranger, no pollution', async (t) => {
    const seen = { accepted: 0, refused: 0, continued: 0 };
    await fc.assert(
      fc.asyncProperty(
        fc.option(fc.constant(null).map(() => validTraceparent()), { freq: 2 }),
        hostileHeaderList,
        fc.oneof({ arbitrary: fc.constant([]), weight: 2 }, { arbitrary: fc.array(fc.tuple(hostileKey, wireValue), { minLength: 1, maxLength: 3 }), weight: 1 }),
        async (parent, headers, rawHeaders) => {
          const lines = [
            ...(parent === null ? [] : [Buffer.from(`traceparent: ${parent}\r\n`, 'latin1')]),
            ...headers.map(([k, v]) => Buffer.from(`${k}: ${v}\r\n`, 'utf8')),
            ...rawHeaders.map(([k, v]) => Buffer.concat([Buffer.from(`${k}: `, 'utf8'), v, Buffer.from('\r\n', 'latin1')])),
          ];
          const reply = await both(lines);
          assert.equal(normalise(reply.traced), normalise(reply.plain));
          assertPrototypeClean(proto);
          if (!reply.traced.startsWith('HTTP/1.1 200')) {
            seen.refused++;
            return;
          }
          seen.accepted++;
          // Accepted: one server span, whose parent (if any) is one the request itself named.
          const s = await serverSpan(reply.path);
          const sent = JSON.parse(reply.traced.slice(reply.traced.indexOf('\r\n\r\n') + 4)) as { headers: Record<string, string | string[]> };
          // Every (trace id, span id) pair the request named, in any format, loosely read.
          const named = new Set<string>();
          const values = (name: string): string[] => [sent.headers[name] ?? []].flat().map((v) => v.trim());
          for (const text of [...values('traceparent'), ...values('b3')]) {
            const m = /([0-9a-f]{32}|[0-9a-f]{16})-([0-9a-f]{16})/.exec(text);
            if (m) named.add(`${m[1]!.padStart(32, '0')}/${m[2]}`);
          }
          for (const tid of values('x-b3-traceid')) for (const sid of values('x-b3-spanid')) named.add(`${tid.padStart(32, '0')}/${sid}`);
          if (s.parentSpanId !== undefined) {
            seen.continued++;
            assert.ok(named.has(`${s.traceId}/${s.parentSpanId}`), `parent ${s.traceId}/${s.parentSpanId} was sent`);
          }
          const single = sent.headers.traceparent;
          const tp = typeof single === 'string' ? parseTraceparent(single) : undefined;
          if (tp) {
            assert.equal(s.traceId, tp.traceId, 'one well-formed traceparent is continued');
            assert.equal(s.parentSpanId, tp.spanId);
          }
        },
      ),
      { numRuns: 150 },
    );
    t.diagnostic(`accepted ${seen.accepted} (continuing a sent parent: ${seen.continued}), refused by Node ${seen.refused}`);
    // The generators reach both sides of Node's parser and both outcomes of extraction.
    assert.ok(seen.accepted > 0 && seen.refused > 0 && seen.continued > 0, JSON.stringify(seen));
  });

  it('10,000 tracestate members: the parent is kept, the tracestate dropped and counted, in bounded time', async () => {
    const traceId = hex(16);
    const spanId = hex(8);
    const members = manyMembers(10_000);
    const before = propagationStats();
    const started = performance.now();
    const bytes = Buffer.from(`GET /context HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\ntraceparent: ${validTraceparent(traceId, spanId)}\r\ntracestate: ${members}\r\n\r\n`, 'latin1');
    const reply = await raw(traced.port, bytes);
    const elapsed = performance.now() - started;
    assert.match(reply, /^HTTP\/1\.1 200/);
    const carrier = JSON.parse(reply.slice(reply.indexOf('\r\n\r\n') + 4)) as Record<string, string>;
    // The handler runs in a child of the sender's span: same trace, and no tracestate passed on.
    assert.equal(parseTraceparent(carrier.traceparent!)?.traceId, traceId);
    assert.equal(carrier.tracestate, undefined);
    assert.equal(propagationStats().invalidTracestate, before.invalidTracestate + 1);
    assert.ok(elapsed < 1000, `answered in ${elapsed.toFixed(0)} ms`);
  });
});
