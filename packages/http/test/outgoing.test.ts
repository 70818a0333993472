import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http, { get as namedGet, type IncomingHttpHeaders, type IncomingMessage, type Server } from 'node:http';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { Collector, contextWithSpan, currentSpan, extract, span, startSpan, withContext, type SpanRecord } from '@cyb/core';
import { httpTraceStats, traceOutgoing } from '../src/index.js';
import { hasRequestCreatedChannel } from '../src/internal/node-client.js';
import { allSpans, closeServer, hex, listen, parseTraceparent, sleep, spanWhere, traceparent, waitFor } from './support.js';

interface Seen {
  path: string;
  headers: IncomingHttpHeaders;
  rawHeaders: string[];
}

const collector = new Collector({ maxTraces: 5000 }).start();
const seen: Seen[] = [];
const echo = (req: IncomingMessage, res: http.ServerResponse): void => {
  seen.push({ path: req.url ?? '', headers: req.headers, rawHeaders: req.rawHeaders });
  const status = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('status') ?? 200);
  req.resume();
  req.on('end', () => {
    res.statusCode = status;
    res.end(JSON.stringify({ ok: true }));
  });
};
let server: Server;
let port: number;
let tlsServer: https.Server;
let tlsPort: number;
let tmp: string;
let stop: () => void;
const originalRequest = http.request;

before(async () => {
  stop = traceOutgoing();
  server = http.createServer(echo);
  port = await listen(server);
  // A throwaway self-signed certificate for the https client checks.
  tmp = mkdtempSync(join(tmpdir(), 'cyb-http-tls-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(tmp, 'key.pem'), '-out', join(tmp, 'cert.pem'), '-subj', '/CN=127.0.0.1', '-days', '1'], { stdio: 'ignore' });
  tlsServer = https.createServer({ key: readFileSync(join(tmp, 'key.pem')), cert: readFileSync(join(tmp, 'cert.pem')) }, echo);
  tlsPort = await listen(tlsServer as unknown as Server);
});
after(async () => {
  stop();
  collector.stop();
  await closeServer(server);
  await closeServer(tlsServer as unknown as Server);
  rmSync(tmp, { recursive: true, force: true });
});
beforeEach(() => {
  collector.clear();
  seen.length = 0;
});

/** Runs `fn` inside a fresh INTERNAL span and returns what it returned with that span's ids. */
async function inSpan<T>(fn: () => Promise<T>): Promise<{ result: T; traceId: string; spanId: string }> {
  let ids = { traceId: '', spanId: '' };
  const result = await span('outer', undefined, async () => {
    const ctx = currentSpan()!.spanContext();
    ids = { traceId: ctx.traceId, spanId: ctx.spanId };
    return fn();
  });
  return { result, ...ids };
}

function nodeCall(mod: typeof http | typeof https, url: string, options: http.RequestOptions = {}, useGet = false): Promise<number> {
  return new Promise((resolve, reject) => {
    const onResponse = (res: IncomingMessage): void => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    };
    const opts = url.startsWith('https:') ? { ...options, rejectUnauthorized: false } : options;
    if (useGet) {
      const req = (mod.get as typeof http.get)(url, opts, onResponse);
      assert.ok(req instanceof http.ClientRequest, 'get still returns the ClientRequest');
      req.on('error', reject);
    } else {
      const req = (mod.request as typeof http.request)(url, opts, onResponse);
      assert.ok(req instanceof http.ClientRequest, 'request still returns the ClientRequest');
      req.on('error', reject);
      req.end();
    }
  });
}

function clientSpanOf(traceId: string): Promise<SpanRecord> {
  return spanWhere(collector, (s) => s.traceId === traceId && s.kind === 'client', `CLIENT span of ${traceId}`);
}

async function assertPropagated(traceId: string, outerId: string, headers: IncomingHttpHeaders, expectedPort: number): Promise<SpanRecord> {
  const client = await clientSpanOf(traceId);
  assert.equal(client.parentSpanId, outerId);
  const tp = parseTraceparent(headers.traceparent);
  assert.ok(tp, `traceparent on the wire: ${String(headers.traceparent)}`);
  assert.equal(tp[1], traceId);
  assert.equal(tp[2], client.spanId, 'the downstream parent is the CLIENT span');
  assert.equal(tp[3], '03', 'sampled, with the random flag of a trace started here');
  assert.equal(headers.b3, `${traceId}-${client.spanId}-1`);
  assert.equal(client.attributes['server.address'], '127.0.0.1');
  assert.equal(client.attributes['server.port'], expectedPort);
  return client;
}

const clients: [string, (url: string, options?: http.RequestOptions) => Promise<number>][] = [
  ['global fetch', async (url, options) => (await fetch(url, { method: options?.method, headers: options?.headers as Record<string, string> })).status],
  ['http.request', (url, options) => nodeCall(http, url, options)],
  ['http.get', (url, options) => nodeCall(http, url, options, true)],
  ['https.request', (url, options) => nodeCall(https, url, options)],
  ['https.get', (url, options) => nodeCall(https, url, options, true)],
  [
    'http.get imported by name',
    (url, options) =>
      new Promise((resolve, reject) => {
        namedGet(url, options ?? {}, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        }).on('error', reject);
      }),
  ],
];

for (const [label, call] of clients) {
  describe(`traceOutgoing() with ${label}`, () => {
    const tls = label.startsWith('https');
    const base = (): string => (tls ? `https://127.0.0.1:${tlsPort}` : `http://127.0.0.1:${port}`);
    const expectedPort = (): number => (tls ? tlsPort : port);

    it('injects traceparent and b3 for a CLIENT span, child of the active span', async () => {
      const { result, traceId, spanId } = await inSpan(() => call(`${base()}/orders?token=secret`, { method: 'POST' }));
      assert.equal(result, 200);
      const client = await assertPropagated(traceId, spanId, seen[0]!.headers, expectedPort());
      assert.equal(client.name, 'POST');
      assert.equal(client.attributes['http.request.method'], 'POST');
      assert.equal(client.attributes['url.full'], `${base()}/orders`);
      assert.equal(client.attributes['http.response.status_code'], 200);
      assert.equal(client.status.code, 'unset');
      assert.equal(seen[0]!.rawHeaders.filter((h) => h.toLowerCase() === 'traceparent').length, 1);
    });

    it('forwards the tracestate and the unsampled flag of a remote parent', async () => {
      const traceId = hex(16);
      const remote = extract({ traceparent: traceparent(traceId, hex(8), '00'), tracestate: 'vendor=abc,other=1' })!;
      const local = startSpan('local', { parent: remote });
      await withContext(contextWithSpan(local, remote), () => call(`${base()}/x`));
      const tp = parseTraceparent(seen[0]!.headers.traceparent);
      assert.ok(tp);
      assert.equal(tp[1], traceId);
      assert.equal(tp[3], '00');
      assert.notEqual(tp[2], local.spanId, 'a new parent id for the hop');
      assert.equal(seen[0]!.headers.tracestate, 'vendor=abc,other=1');
      assert.equal(seen[0]!.headers.b3, `${traceId}-${tp[2]}-0`);
      await sleep(10);
      assert.equal(allSpans(collector).length, 0, 'an unsampled trace records nothing');
    });

    it('never overwrites trace headers the caller set', async () => {
      const theirs = traceparent(hex(16), hex(8));
      const kept = httpTraceStats().callerHeadersKept;
      await inSpan(() => call(`${base()}/x`, { headers: { TraceParent: theirs } }));
      assert.equal(seen[0]!.headers.traceparent, theirs);
      assert.equal(seen[0]!.headers.b3, undefined, 'no second, conflicting parent');
      assert.equal(httpTraceStats().callerHeadersKept, kept + 1);
      const theirB3 = `${hex(16)}-${hex(8)}-1`;
      await inSpan(() => call(`${base()}/y`, { headers: { b3: theirB3 } }));
      assert.equal(seen[1]!.headers.b3, theirB3);
      assert.equal(seen[1]!.headers.traceparent, undefined);
    });

    it('keeps a tracestate the caller set while adding the parent headers', async () => {
      const { traceId } = await inSpan(() => call(`${base()}/x`, { headers: { tracestate: 'mine=1' } }));
      assert.equal(seen[0]!.headers.tracestate, 'mine=1');
      assert.equal(parseTraceparent(seen[0]!.headers.traceparent)?.[1], traceId);
    });

    it('leaves requests outside any span alone', async () => {
      const before = httpTraceStats().clientSpans;
      assert.equal(await call(`${base()}/x`), 200);
      assert.equal(seen[0]!.headers.traceparent, undefined);
      assert.equal(seen[0]!.headers.b3, undefined);
      assert.equal(httpTraceStats().clientSpans, before);
    });

    it('marks a 5xx answer as an error of the CLIENT span', async () => {
      const { result, traceId } = await inSpan(() => call(`${base()}/x?status=502`));
      assert.equal(result, 502);
      const client = await clientSpanOf(traceId);
      assert.equal(client.status.code, 'error');
      assert.equal(client.attributes['http.response.status_code'], 502);
    });
  });
}

describe('traceOutgoing() failures and lifecycle', () => {
  it('records a refused connection and leaves the caller’s error as it was', async () => {
    const closed = http.createServer();
    const deadPort = await listen(closed);
    await closeServer(closed);
    const fetchOutcome = await inSpan(() => fetch(`http://127.0.0.1:${deadPort}/`).then(() => undefined, (e: unknown) => e));
    assert.ok(fetchOutcome.result instanceof TypeError);
    assert.equal((fetchOutcome.result as TypeError & { cause?: { code?: string } }).cause?.code, 'ECONNREFUSED');
    const fetchSpan = await clientSpanOf(fetchOutcome.traceId);
    assert.equal(fetchSpan.status.code, 'error');
    assert.equal(fetchSpan.attributes['error.type'], 'ECONNREFUSED');

    const httpOutcome = await inSpan(() => nodeCall(http, `http://127.0.0.1:${deadPort}/`).then(() => undefined, (e: unknown) => e));
    assert.equal((httpOutcome.result as NodeJS.ErrnoException).code, 'ECONNREFUSED');
    const httpSpan = await clientSpanOf(httpOutcome.traceId);
    assert.equal(httpSpan.status.code, 'error');
  });

  it('ends the span of a response nobody reads (Node dumps it)', async () => {
    const { traceId } = await inSpan(
      () =>
        new Promise<void>((resolve) => {
          const req = http.request(`http://127.0.0.1:${port}/unread`);
          req.on('close', () => resolve());
          req.end();
        }),
    );
    const client = await clientSpanOf(traceId);
    assert.equal(client.attributes['http.response.status_code'], 200);
  });

  it('refuses a second start, and stop() restores the original functions', async () => {
    assert.throws(() => traceOutgoing(), /already running/);
    // Node 22.12, 23.2 and later announce each new ClientRequest on a channel: nothing is wrapped there.
    if (hasRequestCreatedChannel()) assert.equal(http.request, originalRequest);
    else assert.notEqual(http.request, originalRequest);
    stop();
    assert.equal(http.request, originalRequest);
    await inSpan(() => fetch(`http://127.0.0.1:${port}/after-stop`));
    await inSpan(() => nodeCall(http, `http://127.0.0.1:${port}/after-stop`));
    assert.equal(seen[0]!.headers.traceparent, undefined);
    assert.equal(seen[1]!.headers.traceparent, undefined);
    stop = traceOutgoing();
  });

  it('replaces caller trace headers only with overwrite: true', async () => {
    stop();
    stop = traceOutgoing({ overwrite: true, formats: ['w3c'] });
    const theirs = traceparent(hex(16), hex(8));
    const { traceId } = await inSpan(() => fetch(`http://127.0.0.1:${port}/x`, { headers: { traceparent: theirs, b3: 'stale' } }));
    const { traceId: t2 } = await inSpan(() => nodeCall(http, `http://127.0.0.1:${port}/y`, { headers: { traceparent: theirs, b3: 'stale' } }));
    assert.equal(parseTraceparent(seen[0]!.headers.traceparent)?.[1], traceId);
    assert.equal(seen[0]!.headers.b3, undefined);
    assert.equal(seen[0]!.rawHeaders.filter((h) => h.toLowerCase() === 'traceparent').length, 1);
    assert.equal(parseTraceparent(seen[1]!.headers.traceparent)?.[1], t2);
    assert.equal(seen[1]!.headers.b3, undefined);
    stop();
    stop = traceOutgoing();
  });

  it('skips ignored URLs, and traces requests outside spans with rootSpans: true', async () => {
    stop();
    stop = traceOutgoing({ ignore: [/\/v1\/traces$/], rootSpans: true });
    await inSpan(() => fetch(`http://127.0.0.1:${port}/v1/traces`, { method: 'POST', body: '{}' }));
    assert.equal(seen[0]!.headers.traceparent, undefined);
    await fetch(`http://127.0.0.1:${port}/root`);
    const tp = parseTraceparent(seen[1]!.headers.traceparent);
    assert.ok(tp);
    const client = await clientSpanOf(tp[1]);
    assert.equal(client.parentSpanId, undefined);
    stop();
    stop = traceOutgoing();
  });

  it('counts requests whose head was written before it could inject', async () => {
    const before = httpTraceStats().headersTooLate;
    const { traceId } = await inSpan(
      () =>
        new Promise<void>((resolve, reject) => {
          const req = http.request({ host: '127.0.0.1', port, path: '/raw', headers: ['Host', `127.0.0.1:${port}`, 'x-a', '1'] as unknown as http.OutgoingHttpHeaders }, (res) => {
            res.resume();
            res.on('end', () => resolve());
          });
          req.on('error', reject);
          req.end();
        }),
    );
    assert.equal(httpTraceStats().headersTooLate, before + 1);
    assert.equal(seen[0]!.headers.traceparent, undefined);
    await clientSpanOf(traceId);
    await waitFor(() => true);
  });
});
