// 200 concurrent requests, each with its own incoming traceparent, whose handlers await timers, file
// I/O, an outgoing HTTP call and a child span: each must see only its own trace, all the way down.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import http, { type Server } from 'node:http';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { Collector, currentSpan, span } from '@cyb/core';
import Router from '@koa/router';
import express5 from 'express';
import express4 from 'express4';
import Koa3 from 'koa';
import Koa2 from 'koa2';
import { traceHttp, traceOutgoing } from '../src/index.js';
import { closeServer, hex, listen, parseTraceparent, sleep, traceparent, waitFor } from './support.js';

const REQUESTS = 200;
const self = fileURLToPath(import.meta.url);

interface WorkResult {
  seen: (string | undefined)[];
  serverSpanId: string | undefined;
  downstream: string | undefined;
}

let downstream: Server;
let downstreamPort: number;
let stopOutgoing: () => void;
const collector = new Collector({ maxTraces: 10_000 }).start();

before(async () => {
  stopOutgoing = traceOutgoing();
  downstream = http.createServer((req, res) => {
    // Answer later than at once, so requests overlap at the downstream too.
    setTimeout(() => res.end(JSON.stringify({ traceparent: req.headers.traceparent })), Math.random() * 5);
  });
  downstreamPort = await listen(downstream);
});
after(async () => {
  stopOutgoing();
  collector.stop();
  await closeServer(downstream);
});

function traceIdNow(): string | undefined {
  return currentSpan()?.spanContext().traceId;
}

function callDownstream(n: number): Promise<string | undefined> {
  const url = `http://127.0.0.1:${downstreamPort}/echo/${n}`;
  if (n % 2 === 0) return fetch(url).then(async (r) => ((await r.json()) as { traceparent?: string }).traceparent);
  return new Promise((resolve, reject) => {
    http
      .get(url, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve((JSON.parse(body) as { traceparent?: string }).traceparent));
      })
      .on('error', reject);
  });
}

/** The handler body shared by every framework. */
async function work(n: number): Promise<WorkResult> {
  const serverSpanId = currentSpan()?.spanContext().spanId;
  const seen = [traceIdNow()];
  await sleep(Math.random() * 15);
  seen.push(traceIdNow());
  await readFile(self);
  seen.push(traceIdNow());
  const down = await callDownstream(n);
  seen.push(traceIdNow());
  await span('work', undefined, async () => {
    await new Promise((r) => setImmediate(r));
    seen.push(traceIdNow());
  });
  seen.push(traceIdNow());
  return { seen, serverSpanId, downstream: down };
}

function expressApp(express: typeof express5, asyncFirst = false): http.RequestListener {
  const app = express();
  // A middleware that awaits before traceHttp() runs: other requests start in between, so the request
  // traceHttp() sees is often not the one node:http announced last.
  if (asyncFirst) app.use((_req, _res, next) => void sleep(Math.random() * 3).then(() => next()));
  app.use(traceHttp());
  app.get('/work/:n', async (req, res, next) => {
    try {
      res.json(await work(Number(req.params.n)));
    } catch (err) {
      next(err);
    }
  });
  return app;
}

function koaApp(Koa: typeof Koa3): http.RequestListener {
  const app = new Koa();
  app.use(traceHttp());
  const router = new Router();
  router.get('/work/:n', async (ctx) => {
    ctx.body = await work(Number(ctx.params.n));
  });
  app.use(router.routes());
  return app.callback();
}

function get(port: number, path: string, headers: Record<string, string>, agent: http.Agent): Promise<WorkResult> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path, headers, agent }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => (res.statusCode === 200 ? resolve(JSON.parse(body) as WorkResult) : reject(new Error(`${res.statusCode}: ${body}`))));
      })
      .on('error', reject);
  });
}

for (const [label, listener] of [
  ['express 4', () => expressApp(express4)],
  ['express 5', () => expressApp(express5)],
  ['express 5 after an async middleware', () => expressApp(express5, true)],
  ['koa 2', () => koaApp(Koa2)],
  ['koa 3', () => koaApp(Koa3)],
] as const) {
  describe(`${REQUESTS} concurrent requests through ${label}`, () => {
    let server: Server;
    let port: number;
    before(async () => {
      server = http.createServer(listener());
      port = await listen(server);
    });
    after(() => closeServer(server));

    it('gives each handler its own trace, through timers, I/O, outgoing calls and child spans', async () => {
      collector.clear();
      // Keep-alive sockets carry many requests each, so a context left on a socket would show.
      const agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
      const incoming = Array.from({ length: REQUESTS }, () => ({ traceId: hex(16), parentId: hex(8) }));
      try {
        const results = await Promise.all(
          incoming.map(({ traceId, parentId }, n) => get(port, `/work/${n}`, { traceparent: traceparent(traceId, parentId) }, agent)),
        );
        for (const [n, result] of results.entries()) {
          const { traceId } = incoming[n]!;
          assert.deepEqual(result.seen, Array(6).fill(traceId), `request ${n} saw another trace`);
          assert.equal(parseTraceparent(result.downstream)?.[1], traceId, `request ${n} sent another trace downstream`);
        }
        // Every trace holds exactly its SERVER, CLIENT and INTERNAL span, linked parent to child.
        await waitFor(() => (collector.stats().spans >= REQUESTS * 3 ? true : undefined), 'all spans');
        assert.equal(collector.traces().length, REQUESTS);
        for (const [n, { traceId, parentId }] of incoming.entries()) {
          const spans = collector.trace(traceId);
          assert.ok(spans, `trace ${n} collected`);
          assert.equal(spans.length, 3);
          const server = spans.find((s) => s.kind === 'server')!;
          const client = spans.find((s) => s.kind === 'client')!;
          const inner = spans.find((s) => s.name === 'work')!;
          assert.equal(server.parentSpanId, parentId);
          assert.equal(server.spanId, results[n]!.serverSpanId);
          assert.equal(server.name, 'GET /work/:n');
          assert.equal(server.attributes['url.path'], `/work/${n}`);
          assert.equal(client.parentSpanId, server.spanId);
          assert.equal(parseTraceparent(results[n]!.downstream)?.[2], client.spanId);
          assert.equal(inner.parentSpanId, server.spanId);
        }
        assert.equal(currentSpan(), undefined);
      } finally {
        agent.destroy();
      }
    });
  });
}
