// The OTLP receiver of `cyb trace` against hostile senders, on top of what @cyb/cli's own tests cover
// (413/415/400/404/405 one at a time, the 127.0.0.1 URL): who may connect at all, slow senders that
// hold connections open, hundreds of bad requests at once, a gzip bomb, and a good request that must
// still be accepted at once through all of it.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { networkInterfaces } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { dynamicTracesErrors, startCyb, tempDir } from './cyb.js';
import { sleep, waitUntil } from './helpers.js';
import { hex } from './hostile.js';

/** One OTLP/JSON span, as any SDK would send it. */
function goodBody(traceId = hex(16)): string {
  const now = BigInt(Date.now()) * 1_000_000n;
  return JSON.stringify({
    resourceSpans: [{
      resource: { attributes: [{ key: 'service.name', value: { stringValue: 'reliability-sender' } }] },
      scopeSpans: [{ scope: { name: 'test' }, spans: [{ traceId, spanId: hex(8), name: 'good', kind: 2, startTimeUnixNano: String(now), endTimeUnixNano: String(now + 1000n) }] }],
    }],
  });
}

interface Sent {
  status: number;
  ms: number;
}

/** One request with node:http; resolves with the status, or 0 when the connection was cut. */
function post(url: string, options: { body?: Buffer | string; headers?: Record<string, string | number>; method?: string; path?: string; chunked?: boolean; localAddress?: string } = {}): Promise<Sent> {
  const u = new URL(url);
  const started = performance.now();
  return new Promise((resolve) => {
    const req = http.request({
      host: u.hostname, port: u.port, path: options.path ?? u.pathname, method: options.method ?? 'POST',
      headers: { 'content-type': 'application/json', ...options.headers }, agent: false, localAddress: options.localAddress,
    }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: performance.now() - started }));
      res.on('error', () => resolve({ status: res.statusCode ?? 0, ms: performance.now() - started }));
    });
    req.on('error', () => resolve({ status: 0, ms: performance.now() - started }));
    const body = options.body === undefined ? undefined : Buffer.from(options.body);
    if (body !== undefined && options.chunked) {
      // No content-length: the size is only known while reading.
      for (let i = 0; i < body.length; i += 64 * 1024) req.write(body.subarray(i, i + 64 * 1024));
      req.end();
    } else {
      req.end(body);
    }
  });
}

/** A raw HTTP/1.1 connection: what was received so far, and a wait for it to match. */
function rawConnection(port: number): { socket: net.Socket; received: () => string; closed: Promise<void>; until: (pattern: RegExp, what: string) => Promise<void> } {
  const socket = net.connect(port, '127.0.0.1');
  let text = '';
  socket.setEncoding('latin1');
  socket.on('data', (chunk: string) => {
    text += chunk;
  });
  socket.on('error', () => undefined);
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  const until = (pattern: RegExp, what: string): Promise<void> => waitUntil(() => pattern.test(text), what, 5000);
  return { socket, received: () => text, closed, until };
}

/** This machine's first non-loopback IPv4 address, if it has one. */
function externalAddress(): string | undefined {
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return undefined;
}

function connectRefused(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, host);
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code === 'ECONNREFUSED'));
  });
}

describe('the OTLP receiver of cyb trace, against hostile senders', () => {
  it('listens on loopback only by default, and with --host 0.0.0.0 refuses other machines with 403', async (t) => {
    const dir = tempDir();
    const external = externalAddress();
    const local = startCyb(['trace', '--duration', '1500ms', '-o', path.join(dir, 'local.json')]);
    const localUrl = await local.url();
    assert.match(localUrl, /^http:\/\/127\.0\.0\.1:\d+\/v1\/traces$/);
    if (external !== undefined) assert.ok(await connectRefused(external, Number(new URL(localUrl).port)), `nothing listens on ${external}`);
    else t.diagnostic('this machine has no non-loopback IPv4 address; only the bound address was checked');

    const open = startCyb(['trace', '--duration', '2s', '--host', '0.0.0.0', '-o', path.join(dir, 'open.json')]);
    const port = Number(new URL(await open.url()).port);
    if (external !== undefined) {
      const remote = await post(`http://${external}:${port}/v1/traces`, { body: goodBody(), localAddress: external });
      assert.equal(remote.status, 403, 'a sender from a non-loopback address is refused');
    }
    assert.equal((await post(`http://127.0.0.1:${port}/v1/traces`, { body: goodBody() })).status, 200);
    const [a, b] = await Promise.all([local.done, open.done]);
    assert.equal(a.code, 0, local.stderr());
    assert.equal(b.code, 0, open.stderr());
    const doc = JSON.parse(readFileSync(path.join(dir, 'open.json'), 'utf8')) as { traces: unknown[]; summary: { otlp_rejected: number } };
    assert.equal(doc.traces.length, 1);
    assert.equal(doc.summary.otlp_rejected, external === undefined ? 0 : 1);
  });

  it('slow senders, 240 bad requests at once and a gzip bomb get 4xx; a good request is still accepted at once', async (t) => {
    const dir = tempDir();
    const out = path.join(dir, 'traces.json');
    const run = startCyb(['trace', '--max-body', String(1024 * 1024), '-o', out]);
    const url = await run.url();
    const port = Number(new URL(url).port);

    // Slow senders: 30 trickle a body a byte at a time, 10 never finish their headers.
    const slow: net.Socket[] = [];
    for (let i = 0; i < 40; i++) {
      const socket = net.connect(port, '127.0.0.1');
      socket.on('error', () => undefined);
      socket.write(i < 30
        ? 'POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 60000\r\n\r\n{'
        : 'POST /v1/traces HTTP/1.1\r\nHost: x\r\n');
      slow.push(socket);
    }
    const trickle = setInterval(() => {
      for (const [i, s] of slow.entries()) if (!s.destroyed) s.write(i < 30 ? ' ' : 'X');
    }, 100);

    try {
      await sleep(200);
      const big = Buffer.alloc(2 * 1024 * 1024, 0x20);
      const bomb = gzipSync(Buffer.alloc(64 * 1024 * 1024));
      const kinds: [string, number, () => Promise<Sent>][] = [
        ['malformed JSON', 400, () => post(url, { body: '{"resourceSpans": [' })],
        ['JSON but not OTLP', 400, () => post(url, { body: '{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": 7}]}]}]}' })],
        ['__proto__ keys', 400, () => post(url, { body: '{"__proto__": {"polluted": true}, "constructor": {"prototype": {"polluted": true}}}' })],
        ['wrong content type', 415, () => post(url, { body: goodBody(), headers: { 'content-type': 'application/x-protobuf' } })],
        ['unknown content encoding', 415, () => post(url, { body: goodBody(), headers: { 'content-encoding': 'br' } })],
        ['declared too large', 413, () => post(url, { body: big })],
        ['too large, chunked', 413, () => post(url, { body: big, chunked: true })],
        ['wrong method', 405, () => post(url, { method: 'PUT', body: goodBody() })],
        ['wrong path', 404, () => post(url, { path: '/v1/logs', body: goodBody() })],
        ['corrupt gzip', 400, () => post(url, { body: Buffer.from('not gzip at all'), headers: { 'content-encoding': 'gzip' } })],
        ['gzip bomb', 413, () => post(url, { body: bomb, headers: { 'content-encoding': 'gzip' } })],
        ['empty body', 400, () => post(url, { body: '' })],
      ];
      const requests = Array.from({ length: 240 }, (_, i) => kinds[i % kinds.length]!);
      const answers = await Promise.all(requests.map(([, , send]) => send()));
      const wrong = answers.map((a, i) => [requests[i]![0], requests[i]![1], a.status] as const).filter(([, want, got]) => want !== got);
      assert.deepEqual(wrong, [], 'every bad request gets its 4xx');

      // Through all of it, with the slow senders still connected, a good request goes straight in.
      const good = await post(url, { body: goodBody() });
      assert.equal(good.status, 200);
      assert.ok(good.ms < 1000, `the good request took ${good.ms.toFixed(0)} ms`);
      t.diagnostic(`240 bad requests answered in ${Math.max(...answers.map((a) => a.ms)).toFixed(0)} ms at most; the good one after them in ${good.ms.toFixed(0)} ms, 40 slow senders connected`);
      assert.equal(run.child.exitCode, null, 'the receiver is still running');
    } finally {
      clearInterval(trickle);
      // The slow senders give up before the stop: one that never finishes holds the receiver's close()
      // open for as long as Node lets its request run (README, "Findings in other packages").
      for (const s of slow) s.destroy();
    }
    await sleep(100);
    run.child.kill('SIGINT');
    const { code } = await run.done;
    assert.equal(code, 0, run.stderr());
    const doc = JSON.parse(readFileSync(out, 'utf8')) as { traces: { spans: { name: string }[] }[]; summary: { otlp_requests: number; otlp_rejected: number } };
    assert.equal(dynamicTracesErrors(doc), undefined);
    assert.deepEqual(doc.traces.map((tr) => tr.spans.map((s) => s.name)), [['good']]);
    assert.equal(doc.summary.otlp_requests, 1);
    assert.ok(doc.summary.otlp_rejected >= 240, `rejected ${doc.summary.otlp_rejected}`);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  });
  it('a refused body still being sent is read and dropped behind the 413, so the answer arrives and the connection serves on; a much larger one is cut', async () => {
    const dir = tempDir();
    const run = startCyb(['trace', '--max-body', '4096', '-o', path.join(dir, 'traces.json')]);
    const port = Number(new URL(await run.url()).port);
    const head = (length: number): string =>
      `POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\n\r\n`;
    try {
      // 6000 bytes declared against a 4096 limit: the 413 comes before any of the body is sent...
      const a = rawConnection(port);
      a.socket.write(head(6000));
      await a.until(/^HTTP\/1\.1 413 [^]*\r\n\r\n\{[^]*\}/, 'the 413');
      assert.match(a.received(), /connection: keep-alive/i);
      // ...then the sender writes its whole body after all, and a good request on the same connection.
      a.socket.write(' '.repeat(6000));
      const good = goodBody();
      a.socket.write(head(Buffer.byteLength(good)) + good);
      await a.until(/HTTP\/1\.1 200 /, 'the answer to the second request');
      assert.equal(a.received().match(/HTTP\/1\.1 /g)?.length, 2);
      a.socket.destroy();

      // More than twice the limit declared: the answer says so and the connection goes.
      const b = rawConnection(port);
      b.socket.write(head(10_000));
      await b.until(/^HTTP\/1\.1 413 /, 'the 413');
      await b.closed;
      assert.match(b.received(), /connection: close/i);

      // A chunked body that passes the limit while being read: 413, then the rest is dropped, up to the limit.
      const c = rawConnection(port);
      c.socket.write('POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n');
      c.socket.write(`1388\r\n${' '.repeat(5000)}\r\n`);
      await c.until(/^HTTP\/1\.1 413 /, 'the 413 for the chunked body');
      c.socket.write(`bb8\r\n${' '.repeat(3000)}\r\n0\r\n\r\n`);
      c.socket.write(head(Buffer.byteLength(good)) + good);
      await c.until(/HTTP\/1\.1 200 /, 'the answer after the dropped chunked body');
      c.socket.destroy();
    } finally {
      run.child.kill('SIGINT');
    }
    const { code } = await run.done;
    assert.equal(code, 0, run.stderr());
  });
});
