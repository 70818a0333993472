// Hostile input: huge, repeated, CRLF-laden and non-ASCII header values. The server must keep
// serving, start a new trace, never echo the input into response headers or outgoing calls, and
// spend bounded work on each request.
import assert from 'node:assert/strict';
import http, { type IncomingHttpHeaders, type Server } from 'node:http';
import net from 'node:net';
import { after, before, beforeEach, describe, it } from 'node:test';
import { Collector, currentSpan } from '@cyb/core';
import express from 'express';
import { httpTraceStats, traceHttp, traceOutgoing } from '../src/index.js';
import { closeServer, hex, listen, parseTraceparent, send, spanWhere, traceparent, type Reply } from './support.js';

const collector = new Collector({ maxTraces: 5000 }).start();
const downstreamSeen: IncomingHttpHeaders[] = [];
let downstream: Server;
let server: Server;
let port: number;
let stopOutgoing: () => void;

before(async () => {
  stopOutgoing = traceOutgoing();
  downstream = http.createServer((req, res) => {
    downstreamSeen.push(req.headers);
    res.end('{}');
  });
  const downstreamPort = await listen(downstream);
  const app = express();
  app.use(traceHttp({ requestHeaders: ['x-request-id', 'x-big'], responseHeaders: ['x-request-id'], maxHeaderValueLength: 64 }));
  app.all('/relay', async (_req, res, next) => {
    try {
      await (await fetch(`http://127.0.0.1:${downstreamPort}/`)).arrayBuffer();
      res.json({ traceId: currentSpan()?.spanContext().traceId });
    } catch (err) {
      next(err);
    }
  });
  server = http.createServer(app);
  port = await listen(server);
});
after(async () => {
  stopOutgoing();
  collector.stop();
  await closeServer(server);
  await closeServer(downstream);
});
beforeEach(() => {
  collector.clear();
  downstreamSeen.length = 0;
});

/** Writes raw bytes on a fresh connection and returns whatever the server answered before closing. */
function raw(bytes: Buffer | string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', reject);
    socket.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
    socket.setTimeout(2000, () => socket.destroy());
    // Not end(): a half-closed client makes Node abort the request in flight. `Connection: close`
    // has the server close once it has answered.
    socket.write(bytes);
  });
}

function request(headers: string[]): string {
  return `GET /relay HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n${headers.join('\r\n')}\r\n\r\n`;
}

/** The response's header section, lower-cased, to look for echoes of what was sent. */
function headerSection(reply: Reply | string): string {
  if (typeof reply === 'string') return reply.slice(0, reply.indexOf('\r\n\r\n')).toLowerCase();
  return reply.rawHeaders.join('\n').toLowerCase();
}

async function assertServing(): Promise<void> {
  const traceId = hex(16);
  const reply = await send(port, '/relay', { headers: { traceparent: traceparent(traceId, hex(8)) } });
  assert.equal(reply.status, 200);
  assert.equal((JSON.parse(reply.body) as { traceId: string }).traceId, traceId);
}

/** The outgoing call of a request that arrived with hostile headers carries a fresh, clean context. */
function assertCleanDownstream(hostileTraceId?: string): void {
  assert.equal(downstreamSeen.length, 1);
  const out = downstreamSeen[0]!;
  const tp = parseTraceparent(out.traceparent);
  assert.ok(tp, 'a well-formed traceparent downstream');
  if (hostileTraceId !== undefined) assert.notEqual(tp[1], hostileTraceId);
  assert.equal(out.tracestate, undefined, 'no tracestate forwarded');
}

describe('hostile headers', () => {
  it('huge values: a new trace, capped recordings, nothing echoed', async () => {
    const traceId = hex(16);
    // Together just under Node's 16 KiB header limit.
    const hugeParent = `00-${traceId}-${hex(8)}-01-${'a'.repeat(5000)}`;
    const hugeState = Array.from({ length: 600 }, (_, i) => `k${i}=v`).join(',');
    const hugeB3 = `${traceId}-${hex(8)}-1-${'b'.repeat(2000)}`;
    const internal = httpTraceStats().internalErrors;
    const reply = await send(port, '/relay', { headers: { traceparent: hugeParent, tracestate: hugeState, b3: hugeB3, 'x-big': 'x'.repeat(3000) } });
    assert.equal(reply.status, 200);
    const newId = (JSON.parse(reply.body) as { traceId: string }).traceId;
    assert.notEqual(newId, traceId);
    const s = await spanWhere(collector, (x) => x.traceId === newId && x.kind === 'server');
    assert.equal(s.parentSpanId, undefined);
    assert.deepEqual(s.attributes['http.request.header.x-big'], ['x'.repeat(64)]);
    const head = headerSection(reply);
    for (const needle of ['aaaaaaaa', 'k1=v', 'bbbbbbbb', 'xxxxxxxx', traceId]) assert.ok(!head.includes(needle), `response headers do not echo ${needle}`);
    assertCleanDownstream(traceId);
    assert.equal(httpTraceStats().internalErrors, internal);
  });

  it('a header section over the server limit is refused by Node, and the server carries on', async () => {
    const answer = await raw(request([`traceparent: ${'f'.repeat(20_000)}`]));
    assert.match(answer, /^HTTP\/1\.1 431 /);
    await assertServing();
  });

  it('repeated headers: a new trace, at most 16 recorded values each', async () => {
    const traceIds = Array.from({ length: 100 }, () => hex(16));
    const headers: string[] = [];
    for (const id of traceIds) headers.push('traceparent', traceparent(id, hex(8)), 'tracestate', `k${id.slice(0, 6)}=1`, 'x-request-id', id);
    const reply = await send(port, '/relay', { headers });
    assert.equal(reply.status, 200);
    const newId = (JSON.parse(reply.body) as { traceId: string }).traceId;
    assert.ok(!traceIds.includes(newId));
    const s = await spanWhere(collector, (x) => x.traceId === newId && x.kind === 'server');
    assert.equal(s.parentSpanId, undefined);
    assert.deepEqual(s.attributes['http.request.header.x-request-id'], traceIds.slice(0, 16));
    assert.ok(!headerSection(reply).includes(traceIds[0]!));
    assertCleanDownstream();
  });

  it('CR, LF, NUL and obsolete line folding inside values never crash the server', async () => {
    const tpValue = traceparent(hex(16), hex(8));
    const attempts = [
      `traceparent: ${tpValue}\rset-cookie: injected=1`,
      `traceparent: ${tpValue}\nset-cookie: injected=1`,
      `tracestate: a=1\r\n\tb=2`,
      `traceparent: ${tpValue}\r\n set-cookie: injected=1`,
      `b3: ${hex(16)}-${hex(8)}\u0000-1`,
      `x-request-id: a\r\r\nset-cookie: injected=1`,
    ];
    for (const attempt of attempts) {
      const answer = await raw(request([attempt]));
      // Node's parser refuses these (400) or reads them as separate headers (200); neither reflects them.
      assert.match(answer, /^HTTP\/1\.1 (400|200) /, JSON.stringify(attempt));
      assert.ok(!headerSection(answer).includes('injected'), `no echo of ${JSON.stringify(attempt)}`);
    }
    // A value that merely spells out CRLF as text comes through as text and is rejected as a context.
    const reply = await send(port, '/relay', { headers: { traceparent: `${tpValue}%0d%0aset-cookie:%20x`, 'x-request-id': 'id%0d%0aset-cookie:%20x' } });
    assert.equal(reply.status, 200);
    assert.ok(!headerSection(reply).includes('set-cookie'));
    await assertServing();
  });

  it('non-ASCII bytes: a new trace, recorded as received, no failure', async () => {
    const traceId = hex(16);
    const internal = httpTraceStats().internalErrors;
    const answer = await raw(
      Buffer.concat([
        Buffer.from(`GET /relay HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\ntraceparent: 00-${traceId}-${hex(8)}-0`),
        Buffer.from([0xc3, 0xa9]),
        Buffer.from('\r\ntracestate: k=\xff\xfe\r\nb3: ', 'latin1'),
        Buffer.from('é✓-😀', 'utf8'),
        Buffer.from('\r\nx-request-id: caf'),
        Buffer.from([0xe9, 0xff]),
        Buffer.from('\r\n\r\n'),
      ]),
    );
    assert.match(answer, /^HTTP\/1\.1 200 /);
    const body = JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)) as { traceId: string };
    assert.notEqual(body.traceId, traceId);
    const s = await spanWhere(collector, (x) => x.traceId === body.traceId && x.kind === 'server');
    assert.equal(s.parentSpanId, undefined);
    assert.deepEqual(s.attributes['http.request.header.x-request-id'], ['caf\u00e9\u00ff']);
    assertCleanDownstream(traceId);
    assert.equal(httpTraceStats().internalErrors, internal);
  });

  it('an unknown method is recorded as _OTHER and named HTTP <route>', async () => {
    const traceId = hex(16);
    const reply = await send(port, '/relay', { method: 'PROPFIND', headers: { traceparent: traceparent(traceId, hex(8)) } });
    assert.equal(reply.status, 200);
    const s = await spanWhere(collector, (x) => x.traceId === traceId && x.kind === 'server');
    assert.equal(s.name, 'HTTP /relay');
    assert.equal(s.attributes['http.request.method'], '_OTHER');
    assert.equal(s.attributes['http.request.method_original'], 'PROPFIND');
  });

  it('bounded work: 300 requests with maximal hostile headers cost about what plain ones do', async () => {
    const hostile = {
      traceparent: `00-${hex(16)}-${hex(8)}-01-${'a'.repeat(7000)}`,
      tracestate: Array.from({ length: 700 }, (_, i) => `k${i}=${'v'.repeat(5)}`).join(','),
      b3: 'z'.repeat(600),
      'x-big': 'y'.repeat(200),
    };
    const plain = { traceparent: traceparent(hex(16), hex(8)) };
    const agent = new http.Agent({ keepAlive: true, maxSockets: 10 });
    async function batch(headers: Record<string, string>): Promise<number> {
      const start = process.hrtime.bigint();
      for (let round = 0; round < 30; round++) {
        const replies = await Promise.all(Array.from({ length: 10 }, () => send(port, '/relay', { headers, agent })));
        for (const r of replies) assert.equal(r.status, 200);
      }
      return Number(process.hrtime.bigint() - start) / 1e6;
    }
    try {
      await batch(plain); // warm up
      const plainMs = await batch(plain);
      const hostileMs = await batch(hostile);
      // Header parsing and rejection are linear and capped; a generous bound keeps a slow CI box green.
      assert.ok(hostileMs < plainMs * 3 + 500, `hostile ${hostileMs.toFixed(0)} ms vs plain ${plainMs.toFixed(0)} ms`);
    } finally {
      agent.destroy();
    }
  });
});
