import assert from 'node:assert/strict';
import http, { type Server } from 'node:http';
import { after, before, beforeEach, describe, it } from 'node:test';
import { Collector, currentSpan, type SpanRecord } from '@cyb/core';
import express5 from 'express';
import express4 from 'express4';
import { httpTraceStats, traceHttp, traceHttpErrors } from '../src/index.js';
import { allSpans, closeServer, hex, listen, pipelinedPair, send, sleep, spanWhere, traceparent, waitFor } from './support.js';

type ExpressFactory = typeof express5;

class TeapotError extends Error {
  status = 418;
}

/** What `req.route.path` read at the response's 'finish' and some time after the response. */
const routeReads: { finish: unknown; later: unknown }[] = [];

function buildApp(express: ExpressFactory, seenErrors: unknown[]): ReturnType<ExpressFactory> {
  const app = express();
  app.set('env', 'test'); // finalhandler stays quiet
  app.use(
    traceHttp({
      ignore: ['/health', /^\/metrics\//],
      requestHeaders: ['X-Request-Id', 'x-tenant'],
      responseHeaders: ['content-type', 'X-Out'],
      maxHeaderValueLength: 8,
    }),
  );
  const ids = (): { traceId?: string; spanId?: string } => {
    const ctx = currentSpan()?.spanContext();
    return { traceId: ctx?.traceId, spanId: ctx?.spanId };
  };
  app.get('/health', (_req, res) => {
    res.json({ active: currentSpan() !== undefined });
  });
  app.get('/metrics/:kind', (_req, res) => {
    res.json({ active: currentSpan() !== undefined });
  });
  app.get('/users/:id', async (req, res) => {
    const before = ids();
    await sleep(3);
    await new Promise((r) => setImmediate(r));
    res.set('x-out', 'response-value-long');
    res.json({ id: req.params.id, before, after: ids() });
  });
  app.get('/reads/:id', (req, res) => {
    const read: { finish: unknown; later: unknown } = { finish: undefined, later: undefined };
    res.on('finish', () => {
      read.finish = req.route?.path;
      setTimeout(() => {
        read.later = req.route?.path;
        routeReads.push(read);
      }, 20);
    });
    res.send('read');
  });
  const api = express.Router();
  const v1 = express.Router();
  v1.get('/items/:itemId', (_req, res) => {
    res.json(ids());
  });
  v1.get('/fail', (_req, _res, next) => {
    next(new Error('nested failure'));
  });
  v1.get('/', (_req, res) => {
    res.send('v1 root');
  });
  api.use('/v1', v1);
  app.use('/api', api);
  const shop = express();
  shop.get('/orders/:oid', (_req, res) => {
    res.json(ids());
  });
  app.use('/shop', shop);
  app.get('/boom', () => {
    throw new Error('sync boom');
  });
  app.get('/teapot', () => {
    throw new TeapotError('short and stout');
  });
  app.get('/unavailable', (_req, res) => {
    res.status(503).send('later');
  });
  app.get('/slow', (_req, res) => {
    setTimeout(() => {
      if (!res.destroyed) res.send('late');
    }, 400).unref();
  });
  app.use(traceHttpErrors());
  app.use((err: Error & { status?: number }, _req: express5.Request, res: express5.Response, _next: express5.NextFunction) => {
    seenErrors.push(err);
    res.status(err.status ?? 500).json({ error: err.message });
  });
  return app;
}

const collector = new Collector({ maxTraces: 5000 }).start();
after(() => collector.stop());

for (const [label, express] of [
  ['express 4', express4],
  ['express 5', express5],
] as const) {
  describe(`traceHttp() in ${label}`, () => {
    let server: Server;
    let port: number;
    const seenErrors: unknown[] = [];

    before(async () => {
      server = http.createServer(buildApp(express, seenErrors));
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

    it('names the span after the route template and records the HTTP attributes', async () => {
      const traceId = hex(16);
      const parentId = hex(8);
      const reply = await send(port, '/users/42?secret=1', { headers: { traceparent: traceparent(traceId, parentId), 'user-agent': 'probe/1.0' } });
      assert.equal(reply.status, 200);
      const s = await serverSpan(traceId);
      assert.equal(s.name, 'GET /users/:id');
      assert.equal(s.parentSpanId, parentId);
      assert.equal(s.status.code, 'unset');
      assert.equal(s.attributes['http.request.method'], 'GET');
      assert.equal(s.attributes['http.route'], '/users/:id');
      assert.equal(s.attributes['url.path'], '/users/42');
      assert.equal(s.attributes['url.scheme'], 'http');
      assert.equal(s.attributes['http.response.status_code'], 200);
      assert.equal(s.attributes['server.address'], '127.0.0.1');
      assert.equal(s.attributes['server.port'], port);
      assert.equal(s.attributes['user_agent.original'], 'probe/1.')
    });

    it('makes the span the active context of an async handler, before and after awaits', async () => {
      const traceId = hex(16);
      const reply = await send(port, '/users/7', { headers: { traceparent: traceparent(traceId, hex(8)) } });
      const body = JSON.parse(reply.body) as { before: { traceId: string; spanId: string }; after: { traceId: string; spanId: string } };
      const s = await serverSpan(traceId);
      assert.deepEqual(body.before, { traceId, spanId: s.spanId });
      assert.deepEqual(body.after, { traceId, spanId: s.spanId });
      assert.equal(currentSpan(), undefined, 'nothing leaks into the test');
    });

    it('continues a B3 single-header and a B3 multi-header trace', async () => {
      const single = hex(16);
      const singleParent = hex(8);
      await send(port, '/users/1', { headers: { b3: `${single}-${singleParent}-1` } });
      assert.equal((await serverSpan(single)).parentSpanId, singleParent);
      const multi = hex(16);
      const multiParent = hex(8);
      await send(port, '/users/1', { headers: { 'X-B3-TraceId': multi, 'X-B3-SpanId': multiParent, 'X-B3-Sampled': '1' } });
      assert.equal((await serverSpan(multi)).parentSpanId, multiParent);
    });

    it('starts a new trace when traceparent is invalid', async () => {
      const bad = hex(16);
      const reply = await send(port, '/users/3', { headers: { traceparent: `00-${bad}-0000000000000000-01` } });
      const body = JSON.parse(reply.body) as { before: { traceId: string } };
      assert.notEqual(body.before.traceId, bad);
      const s = await serverSpan(body.before.traceId);
      assert.equal(s.parentSpanId, undefined);
      assert.equal(s.name, 'GET /users/:id');
    });

    it('joins the mount paths of nested routers and mounted apps', async () => {
      const a = hex(16);
      await send(port, '/api/v1/items/9', { headers: { traceparent: traceparent(a, hex(8)) } });
      const nested = await serverSpan(a);
      assert.equal(nested.name, 'GET /api/v1/items/:itemId');
      assert.equal(nested.attributes['http.route'], '/api/v1/items/:itemId');
      const b = hex(16);
      await send(port, '/shop/orders/5', { headers: { traceparent: traceparent(b, hex(8)) } });
      assert.equal((await serverSpan(b)).name, 'GET /shop/orders/:oid');
      const c = hex(16);
      await send(port, '/api/v1', { headers: { traceparent: traceparent(c, hex(8)) } });
      assert.equal((await serverSpan(c)).name, 'GET /api/v1');
    });

    it('names an unmatched request after the method alone (404)', async () => {
      const traceId = hex(16);
      const reply = await send(port, '/nowhere/at/all', { headers: { traceparent: traceparent(traceId, hex(8)) } });
      assert.equal(reply.status, 404);
      const s = await serverSpan(traceId);
      assert.equal(s.name, 'GET');
      assert.equal(s.attributes['http.route'], undefined);
      assert.equal(s.attributes['http.response.status_code'], 404);
      assert.equal(s.status.code, 'unset');
    });

    it('records a thrown error and hands the same object to the application error handler', async () => {
      const traceId = hex(16);
      const reply = await send(port, '/boom', { headers: { traceparent: traceparent(traceId, hex(8)) } });
      assert.equal(reply.status, 500);
      assert.deepEqual(JSON.parse(reply.body), { error: 'sync boom' });
      assert.equal(seenErrors.length, 1);
      assert.ok(seenErrors[0] instanceof Error && seenErrors[0].message === 'sync boom');
      const s = await serverSpan(traceId);
      assert.equal(s.name, 'GET /boom');
      assert.equal(s.status.code, 'error');
      assert.equal(s.attributes['error.type'], '500');
      const exception = s.events.find((e) => e.name === 'exception');
      assert.equal(exception?.attributes?.['exception.message'], 'sync boom');
    });

    it('keeps the nested route name when an error is answered by an outer handler', async () => {
      const traceId = hex(16);
      const reply = await send(port, '/api/v1/fail', { headers: { traceparent: traceparent(traceId, hex(8)) } });
      assert.equal(reply.status, 500);
      assert.equal((seenErrors[0] as Error).message, 'nested failure');
      const s = await serverSpan(traceId);
      assert.equal(s.name, 'GET /api/v1/fail');
      assert.equal(s.status.code, 'error');
    });

    it('records a 4xx error as an exception event without an error status', async () => {
      const traceId = hex(16);
      const reply = await send(port, '/teapot', { headers: { traceparent: traceparent(traceId, hex(8)) } });
      assert.equal(reply.status, 418);
      assert.ok(seenErrors[0] instanceof TeapotError);
      const s = await serverSpan(traceId);
      assert.equal(s.status.code, 'unset');
      assert.equal(s.events.filter((e) => e.name === 'exception').length, 1);
    });

    it('marks a 5xx response as an error', async () => {
      const traceId = hex(16);
      await send(port, '/unavailable', { headers: { traceparent: traceparent(traceId, hex(8)) } });
      const s = await serverSpan(traceId);
      assert.equal(s.status.code, 'error');
      assert.equal(s.attributes['http.response.status_code'], 503);
      assert.equal(s.events.length, 0);
    });

    it('ends the span as aborted when the client goes away first', async () => {
      const traceId = hex(16);
      const abortedBefore = httpTraceStats().aborted;
      await new Promise<void>((resolve) => {
        const req = http.get({ host: '127.0.0.1', port, path: '/slow', headers: { traceparent: traceparent(traceId, hex(8)) } });
        req.on('error', () => resolve());
        setTimeout(() => req.destroy(), 50);
      });
      const s = await serverSpan(traceId);
      assert.equal(s.name, 'GET /slow');
      assert.equal(s.attributes['http.aborted'], true);
      assert.equal(s.attributes['http.response.status_code'], undefined);
      assert.equal(s.status.code, 'error');
      assert.equal(httpTraceStats().aborted, abortedBefore + 1);
    });

    it('leaves req.route as Express set it, for readers after the response ended', async () => {
      routeReads.length = 0;
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      try {
        // The second request reuses the connection before the first one's late read.
        await send(port, '/reads/1', { agent });
        await send(port, '/reads/2', { agent });
        await waitFor(() => (routeReads.length === 2 ? true : undefined), 'both late reads');
      } finally {
        agent.destroy();
      }
      assert.deepEqual(routeReads, [
        { finish: '/reads/:id', later: '/reads/:id' },
        { finish: '/reads/:id', later: '/reads/:id' },
      ]);
      const names = await waitFor(() => {
        const spans = allSpans(collector).filter((s) => s.attributes['url.path']?.toString().startsWith('/reads/'));
        return spans.length === 2 ? spans.map((s) => s.name) : undefined;
      }, 'both SERVER spans');
      assert.deepEqual(names, ['GET /reads/:id', 'GET /reads/:id']);
    });

    it('ends the span as aborted when the client left before an earlier middleware let traceHttp() in', async () => {
      const app = express();
      let arrived!: () => void;
      const arrival = new Promise<void>((resolve) => (arrived = resolve));
      // Lets the request on only once its connection has closed.
      app.use((req, _res, next) => {
        arrived();
        req.socket.once('close', () => setImmediate(next));
      });
      app.use(traceHttp());
      app.get('/late/:id', (_req, res) => {
        res.send('too late');
      });
      const late = http.createServer(app);
      const latePort = await listen(late);
      try {
        const traceId = hex(16);
        await new Promise<void>((resolve) => {
          const req = http.get({ host: '127.0.0.1', port: latePort, path: '/late/1', headers: { traceparent: traceparent(traceId, hex(8)) } });
          req.on('error', () => resolve());
          void arrival.then(() => req.destroy());
        });
        const s = await serverSpan(traceId);
        assert.equal(s.attributes['http.aborted'], true);
        assert.equal(s.status.code, 'error');
      } finally {
        await closeServer(late);
      }
    });

    it('traces pipelined requests on one connection each in its own span', async () => {
      const { statuses, first, second } = await pipelinedPair(port, collector, [{ path: '/api/v1/items/3' }]);
      assert.deepEqual(statuses, [200, 503, 200]);
      assert.equal(first.name, 'GET /users/:id');
      assert.equal(first.attributes['http.response.status_code'], 200);
      assert.equal(second.name, 'GET /unavailable');
      assert.equal(second.attributes['http.response.status_code'], 503);
      assert.equal(second.status.code, 'error');
      const third = await spanWhere(collector, (s) => s.attributes['url.path'] === '/api/v1/items/3', 'third pipelined span');
      assert.equal(third.name, 'GET /api/v1/items/:itemId');
      assert.equal(third.parentSpanId, undefined);
    });

    it('leaves ignored paths untraced and without an active span', async () => {
      const traceId = hex(16);
      const health = await send(port, '/health', { headers: { traceparent: traceparent(traceId, hex(8)) } });
      assert.deepEqual(JSON.parse(health.body), { active: false });
      const metrics = await send(port, '/metrics/cpu?x=1', { headers: { traceparent: traceparent(traceId, hex(8)) } });
      assert.deepEqual(JSON.parse(metrics.body), { active: false });
      // A traced request afterwards proves the spans would have arrived by now.
      const later = hex(16);
      await send(port, '/users/1', { headers: { traceparent: traceparent(later, hex(8)) } });
      await serverSpan(later);
      assert.equal(collector.traces().find((t) => t.traceId === traceId), undefined);
    });

    it('records only allow-listed headers, as arrays of capped values', async () => {
      const traceId = hex(16);
      await send(port, '/users/1', {
        headers: ['traceparent', traceparent(traceId, hex(8)), 'X-Request-ID', 'abc', 'x-request-id', '0123456789abcdef', 'x-secret', 'nope'],
      });
      const s = await serverSpan(traceId);
      assert.deepEqual(s.attributes['http.request.header.x-request-id'], ['abc', '01234567']);
      assert.equal(s.attributes['http.request.header.x-tenant'], undefined);
      assert.equal(s.attributes['http.request.header.x-secret'], undefined);
      assert.deepEqual(s.attributes['http.response.header.x-out'], ['response']);
      assert.deepEqual(s.attributes['http.response.header.content-type'], ['applicat']);
    });
  });

  describe(`traceHttp() options in ${label}`, () => {
    it('uses the spanName hook, and the default name when the hook throws', async () => {
      const app = express();
      let calls = 0;
      app.use(
        traceHttp({
          spanName: ({ method, route, path, statusCode }) => {
            calls++;
            if (path === '/throws') throw new Error('hook bug');
            return `${method} ${route ?? '?'} -> ${statusCode}`;
          },
        }),
      );
      app.get('/named/:x', (_req, res) => {
        res.status(201).end();
      });
      app.get('/throws', (_req, res) => {
        res.end();
      });
      const server = http.createServer(app);
      const port = await listen(server);
      try {
        collector.clear();
        const hookErrors = httpTraceStats().hookErrors;
        const a = hex(16);
        await send(port, '/named/1', { headers: { traceparent: traceparent(a, hex(8)) } });
        assert.equal((await spanWhere(collector, (s) => s.traceId === a)).name, 'GET /named/:x -> 201');
        const b = hex(16);
        await send(port, '/throws', { headers: { traceparent: traceparent(b, hex(8)) } });
        assert.equal((await spanWhere(collector, (s) => s.traceId === b)).name, 'GET /throws');
        assert.equal(calls, 2);
        assert.equal(httpTraceStats().hookErrors, hookErrors + 1);
      } finally {
        await closeServer(server);
      }
    });

    it('extracts only the configured formats', async () => {
      const app = express();
      app.use(traceHttp({ formats: ['b3'] }));
      app.get('/', (_req, res) => {
        res.json({ traceId: currentSpan()?.spanContext().traceId });
      });
      const server = http.createServer(app);
      const port = await listen(server);
      try {
        const w3c = hex(16);
        const b3 = hex(16);
        const reply = await send(port, '/', { headers: { traceparent: traceparent(w3c, hex(8)), b3: `${b3}-${hex(8)}-1` } });
        assert.equal((JSON.parse(reply.body) as { traceId: string }).traceId, b3);
      } finally {
        await closeServer(server);
      }
    });

    it('fails fast on misuse at setup', () => {
      assert.throws(() => traceHttp({ formats: ['w3c', 'zipkin' as 'b3'] }), TypeError);
      assert.throws(() => traceHttp({ ignore: 42 as unknown as string }), TypeError);
      assert.throws(() => traceHttp({ requestHeaders: ['bad header'] }), TypeError);
      assert.throws(() => traceHttp({ maxHeaderValueLength: 0 }), RangeError);
      assert.throws(() => traceHttp({ spanName: 'x' as unknown as () => string }), TypeError);
    });

    it('passes requests straight on while nothing uses spans, and traces them with always: true', async () => {
      collector.stop();
      const app = express();
      app.use('/always', traceHttp({ always: true }));
      app.use(traceHttp());
      const handler = (req: express5.Request, res: express5.Response): void => {
        res.json({ traceId: currentSpan()?.spanContext().traceId ?? null, route: (req.route as { path?: string } | undefined)?.path ?? null });
      };
      app.get('/x/:y', handler);
      app.get('/always/x/:y', handler);
      const server = http.createServer(app);
      const port = await listen(server);
      try {
        collector.clear();
        const before = httpTraceStats().serverSpans;
        const traceId = hex(16);
        const plain = await send(port, '/x/1', { headers: { traceparent: traceparent(traceId, hex(8)) } });
        assert.deepEqual(JSON.parse(plain.body), { traceId: null, route: '/x/:y' });
        assert.equal(httpTraceStats().serverSpans, before);
        const always = await send(port, '/always/x/1', { headers: { traceparent: traceparent(traceId, hex(8)) } });
        assert.deepEqual(JSON.parse(always.body), { traceId, route: '/always/x/:y' });
        assert.equal(httpTraceStats().serverSpans, before + 1);
        await sleep(20);
        assert.equal(collector.traces().length, 0, 'nothing is recorded without a subscriber');
      } finally {
        collector.start();
        await closeServer(server);
      }
    });
  });
}

describe('traceHttp() shape detection', () => {
  it('passes through, without throwing, when called with neither Express nor Koa arguments', async () => {
    const mw = traceHttp() as unknown as (...args: unknown[]) => unknown;
    const before = httpTraceStats().internalErrors;
    let called = false;
    assert.equal(mw({}, () => (called = true)), true);
    assert.equal(called, true);
    assert.equal(httpTraceStats().internalErrors, before + 1);
    await waitFor(() => true);
  });
});
