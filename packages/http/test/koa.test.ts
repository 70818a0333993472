import assert from 'node:assert/strict';
import http, { type Server } from 'node:http';
import http2 from 'node:http2';
import { after, before, beforeEach, describe, it } from 'node:test';
import { Collector, currentSpan, type SpanRecord } from '@cyb/core';
import Router from '@koa/router';
import Koa3 from 'koa';
import Koa2 from 'koa2';
import { traceHttp } from '../src/index.js';
import { closeServer, hex, listen, pipelinedPair, send, sleep, spanWhere, traceparent } from './support.js';

const koaBoom = new Error('koa boom');

function ids(): { traceId?: string; spanId?: string } {
  const ctx = currentSpan()?.spanContext();
  return { traceId: ctx?.traceId, spanId: ctx?.spanId };
}

function buildApp(Koa: typeof Koa3, seenErrors: unknown[]): Koa3 {
  const app = new Koa();
  // A listener keeps Koa from logging, and shows what reaches the application.
  app.on('error', (err: unknown) => seenErrors.push(err));
  app.use(traceHttp({ ignore: '/health', requestHeaders: ['x-request-id'] }));
  const router = new Router();
  router.get('/health', (ctx) => {
    ctx.body = { active: currentSpan() !== undefined };
  });
  router.get('/users/:id', async (ctx) => {
    const first = ids();
    await sleep(3);
    await new Promise((r) => setImmediate(r));
    ctx.body = { id: ctx.params.id, before: first, after: ids() };
  });
  router.get('/boom', () => {
    throw koaBoom;
  });
  router.get('/rejects', async () => {
    await sleep(1);
    throw koaBoom;
  });
  router.get('/teapot', (ctx) => {
    ctx.throw(418, 'short and stout');
  });
  router.get('/unavailable', (ctx) => {
    ctx.status = 503;
    ctx.body = 'later';
  });
  router.get('/slow', async (ctx) => {
    await sleep(400);
    ctx.body = 'late';
  });
  const api = new Router({ prefix: '/api' });
  const v1 = new Router();
  v1.get('/items/:itemId', (ctx) => {
    ctx.body = ids();
  });
  api.use('/v1', v1.routes());
  app.use(router.routes());
  app.use(api.routes());
  return app;
}

const collector = new Collector({ maxTraces: 5000 }).start();
after(() => collector.stop());

for (const [label, Koa] of [
  ['koa 2', Koa2],
  ['koa 3', Koa3],
] as const) {
  describe(`traceHttp() in ${label} with @koa/router`, () => {
    let server: Server;
    let port: number;
    const seenErrors: unknown[] = [];

    before(async () => {
      server = http.createServer(buildApp(Koa, seenErrors).callback());
      port = await listen(server);
    });
    after(() => closeServer(server));
    beforeEach(() => {
      collector.clear();
      seenErrors.length = 0;
    });

    function serverSpan(traceId: string): Promise<SpanRecord> {
      return spanWhere(collector, (s) => s.traceId === traceId && s.kind === 'server', `SERVER span of ${traceId}`);
    }

    it('names the span after the matched route and keeps it active across awaits', async () => {
      const traceId = hex(16);
      const parentId = hex(8);
      const reply = await send(port, '/users/42?q=1', { headers: { traceparent: traceparent(traceId, parentId), 'x-request-id': 'r1' } });
      assert.equal(reply.status, 200);
      const s = await serverSpan(traceId);
      assert.equal(s.name, 'GET /users/:id');
      assert.equal(s.parentSpanId, parentId);
      assert.equal(s.attributes['http.route'], '/users/:id');
      assert.equal(s.attributes['url.path'], '/users/42');
      assert.equal(s.attributes['http.response.status_code'], 200);
      assert.deepEqual(s.attributes['http.request.header.x-request-id'], ['r1']);
      const body = JSON.parse(reply.body) as { before: unknown; after: unknown };
      assert.deepEqual(body.before, { traceId, spanId: s.spanId });
      assert.deepEqual(body.after, { traceId, spanId: s.spanId });
    });

    it('includes router prefixes and nested routers in the route', async () => {
      const traceId = hex(16);
      await send(port, '/api/v1/items/3', { headers: { traceparent: traceparent(traceId, hex(8)) } });
      const s = await serverSpan(traceId);
      assert.equal(s.name, 'GET /api/v1/items/:itemId');
    });

    it('names an unmatched request after the method alone (404)', async () => {
      const traceId = hex(16);
      const reply = await send(port, '/missing', { headers: { traceparent: traceparent(traceId, hex(8)) } });
      assert.equal(reply.status, 404);
      const s = await serverSpan(traceId);
      assert.equal(s.name, 'GET');
      assert.equal(s.attributes['http.route'], undefined);
      assert.equal(s.status.code, 'unset');
    });

    for (const path of ['/boom', '/rejects']) {
      it(`records an error thrown by a handler (${path}) and lets Koa handle the very same object`, async () => {
        const traceId = hex(16);
        const reply = await send(port, path, { headers: { traceparent: traceparent(traceId, hex(8)) } });
        assert.equal(reply.status, 500);
        assert.equal(reply.body, 'Internal Server Error');
        assert.equal(seenErrors.length, 1);
        assert.equal(seenErrors[0], koaBoom);
        const s = await serverSpan(traceId);
        assert.equal(s.name, `GET ${path}`);
        assert.equal(s.status.code, 'error');
        assert.equal(s.status.message, 'koa boom');
        assert.equal(s.events.filter((e) => e.name === 'exception').length, 1);
      });
    }

    it('keeps a 4xx from ctx.throw out of the error status', async () => {
      const traceId = hex(16);
      const reply = await send(port, '/teapot', { headers: { traceparent: traceparent(traceId, hex(8)) } });
      assert.equal(reply.status, 418);
      const s = await serverSpan(traceId);
      assert.equal(s.status.code, 'unset');
      assert.equal(s.attributes['http.response.status_code'], 418);
      assert.equal(s.events.filter((e) => e.name === 'exception').length, 1);
    });

    it('marks a 5xx response as an error', async () => {
      const traceId = hex(16);
      await send(port, '/unavailable', { headers: { traceparent: traceparent(traceId, hex(8)) } });
      const s = await serverSpan(traceId);
      assert.equal(s.status.code, 'error');
      assert.equal(s.attributes['error.type'], '503');
    });

    it('ends the span as aborted when the client goes away first', async () => {
      const traceId = hex(16);
      await new Promise<void>((resolve) => {
        const req = http.get({ host: '127.0.0.1', port, path: '/slow', headers: { traceparent: traceparent(traceId, hex(8)) } });
        req.on('error', () => resolve());
        setTimeout(() => req.destroy(), 50);
      });
      const s = await serverSpan(traceId);
      assert.equal(s.name, 'GET /slow');
      assert.equal(s.attributes['http.aborted'], true);
      assert.equal(s.status.code, 'error');
    });

    it('leaves an ignored path untraced', async () => {
      const reply = await send(port, '/health', { headers: { traceparent: traceparent(hex(16), hex(8)) } });
      assert.deepEqual(JSON.parse(reply.body), { active: false });
    });

    it('traces pipelined requests on one connection each in its own span', async () => {
      const { statuses, first, second } = await pipelinedPair(port, collector);
      assert.deepEqual(statuses, [200, 503]);
      assert.equal(first.name, 'GET /users/:id');
      assert.equal(first.attributes['http.response.status_code'], 200);
      assert.equal(second.name, 'GET /unavailable');
      assert.equal(second.attributes['http.response.status_code'], 503);
    });
  });
}

describe('traceHttp() in Koa on HTTP/2', () => {
  let server: http2.Http2Server;
  let port: number;
  let client: http2.ClientHttp2Session;

  before(async () => {
    server = http2.createServer(buildApp(Koa3, []).callback());
    port = await new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)));
    client = http2.connect(`http://127.0.0.1:${port}`);
  });
  after(async () => {
    client.close();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  function get(path: string, headers: Record<string, string>, abortAfterMs?: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const stream = client.request({ ':path': path, ...headers });
      let status = 0;
      stream.on('response', (h) => (status = Number(h[':status'])));
      stream.on('data', () => {});
      stream.on('end', () => resolve(status));
      stream.on('close', () => resolve(status));
      stream.on('error', reject);
      if (abortAfterMs !== undefined) setTimeout(() => stream.close(http2.constants.NGHTTP2_CANCEL), abortAfterMs);
    });
  }

  it('ends the SERVER span when the stream ends, with the route and the status', async () => {
    const traceId = hex(16);
    const parentId = hex(8);
    assert.equal(await get('/users/9', { traceparent: traceparent(traceId, parentId) }), 200);
    const s = await spanWhere(collector, (x) => x.traceId === traceId && x.kind === 'server', 'HTTP/2 SERVER span');
    assert.equal(s.name, 'GET /users/:id');
    assert.equal(s.parentSpanId, parentId);
    assert.equal(s.attributes['http.response.status_code'], 200);
    assert.equal(s.attributes['http.aborted'], undefined);
  });

  it('marks the span aborted when the client cancels the stream first', async () => {
    const traceId = hex(16);
    await get('/slow', { traceparent: traceparent(traceId, hex(8)) }, 50);
    const s = await spanWhere(collector, (x) => x.traceId === traceId && x.kind === 'server', 'cancelled HTTP/2 SERVER span');
    assert.equal(s.name, 'GET /slow');
    assert.equal(s.attributes['http.aborted'], true);
  });
});
