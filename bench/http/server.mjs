// One server in a process of its own, for bench/http/run.mjs: a route returning small JSON.
//
//   node bench/http/server.mjs <express|koa> <plain|cyb|cyb-no-collector|cyb-keep-none|cyb-small|noop|als|spin-<µs>|otel>
//
// plain:            the framework as is.
// cyb:              app.use(traceHttp()) first, spans kept by a Collector (bounded, LRU).
// cyb-no-collector: app.use(traceHttp()) with nothing subscribed to the span channel.
// cyb-keep-none:    app.use(traceHttp()) with a span subscriber that keeps nothing: the span work
//                   without the cost of keeping spans (not run by default).
// cyb-small:        app.use(traceHttp()) with a Collector of 16 traces instead of 1000 (not run by
//                   default).
// noop:             control: a middleware that only calls next(), the least any app.use() costs.
// als:              control: a middleware that only runs next() inside AsyncLocalStorage.run(), the
//                   least carrying an active context through the handler chain costs on this Node
//                   (on Node 20 a running AsyncLocalStorage turns on promise hooks for every promise).
// spin-<µs>:        control: a middleware that keeps the CPU busy for that many microseconds, then
//                   calls next(): what a known cost per request does to the figures (not run by
//                   default).
// otel:             @opentelemetry/instrumentation-http + -express or -koa, a BasicTracerProvider with a
//                   BatchSpanProcessor, W3C + B3 propagation and the AsyncLocalStorage context manager
//                   (what an SDK setup registers). Instrumentations are enabled before the framework and
//                   node:http are required, as they must be.
// Talks to run.mjs over IPC: sends { port } once listening; on 'mark' starts counting requests and
// CPU time; on 'report' answers with what it counted since the mark and the variant's own counters.
// Started without IPC (instructions.mjs) it prints `listening <port>` and exits after
// BENCH_HTTP_REQUESTS requests.
import { createRequire } from 'node:module';

const [framework, variant] = process.argv.slice(2);
const require = createRequire(import.meta.url);
let middleware;
let finish = async () => ({});

if (typeof variant === 'string' && variant.startsWith('cyb')) {
  const { Collector, onSpanEnd } = await import('@cyb/core');
  const { traceHttp, httpTraceStats } = await import('@cyb/http');
  let collector;
  if (variant === 'cyb') collector = new Collector().start();
  else if (variant === 'cyb-small') collector = new Collector({ maxTraces: 16 }).start();
  else if (variant === 'cyb-keep-none') onSpanEnd(() => {});
  else if (variant !== 'cyb-no-collector') {
    console.error(`unknown variant ${variant}`);
    process.exit(2);
  }
  middleware = traceHttp();
  finish = async () => ({ collected: collector?.stats(), http: httpTraceStats() });
} else if (variant === 'otel') {
  const { startOtelSdk } = await import('../lib/otel-sdk.mjs');
  const { registerInstrumentations } = await import('@opentelemetry/instrumentation');
  const { HttpInstrumentation } = await import('@opentelemetry/instrumentation-http');
  const sdk = startOtelSdk();
  const frameworkInstrumentation = framework === 'koa'
    ? new (await import('@opentelemetry/instrumentation-koa')).KoaInstrumentation()
    : new (await import('@opentelemetry/instrumentation-express')).ExpressInstrumentation();
  registerInstrumentations({ tracerProvider: sdk.provider, instrumentations: [new HttpInstrumentation(), frameworkInstrumentation] });
  finish = sdk.finish;
} else if (variant === 'noop') {
  middleware = framework === 'koa' ? (ctx, next) => next() : (req, res, next) => next();
} else if (variant === 'als') {
  const { AsyncLocalStorage } = await import('node:async_hooks');
  const store = new AsyncLocalStorage();
  let n = 0;
  middleware = framework === 'koa' ? (ctx, next) => store.run({ n: n++ }, next) : (req, res, next) => store.run({ n: n++ }, next);
} else if (typeof variant === 'string' && /^spin-\d{1,4}$/.test(variant)) {
  const { busyFor } = await import('../lib/busy.mjs');
  const spin = busyFor(Number(variant.slice('spin-'.length)));
  middleware = framework === 'koa'
    ? (ctx, next) => {
        spin();
        return next();
      }
    : (req, res, next) => {
        spin();
        next();
      };
} else if (variant !== 'plain') {
  console.error(`unknown variant ${variant}`);
  process.exit(2);
}

const http = require('node:http');
let listener;
if (framework === 'express') {
  const express = require('express');
  const app = express();
  if (middleware) app.use(middleware);
  app.get('/users/:id', (req, res) => {
    res.json({ id: req.params.id, name: 'Ada', active: true });
  });
  listener = app;
} else if (framework === 'koa') {
  const Koa = require('koa');
  const Router = require('@koa/router');
  const app = new Koa();
  if (middleware) app.use(middleware);
  const router = new Router();
  router.get('/users/:id', (ctx) => {
    ctx.body = { id: ctx.params.id, name: 'Ada', active: true };
  });
  app.use(router.routes());
  listener = app.callback();
} else {
  console.error(`unknown framework ${framework}`);
  process.exit(2);
}

const server = http.createServer(listener);
// CPU time per request is what the run compares besides throughput: on a shared machine other
// processes move requests per second around much more than they move the server's own CPU time.
let requests = 0;
server.on('request', () => requests++);
let mark = { cpu: process.cpuUsage(), requests: 0 };
process.on('message', async (msg) => {
  if (msg === 'mark') {
    mark = { cpu: process.cpuUsage(), requests };
    process.send({ marked: true });
  } else if (msg === 'report') {
    const cpu = process.cpuUsage(mark.cpu);
    const counted = requests - mark.requests;
    process.send({ requests: counted, cpuUsPerRequest: (cpu.user + cpu.system) / Math.max(1, counted), userUsPerRequest: cpu.user / Math.max(1, counted), counters: await finish() });
    server.close();
    server.closeAllConnections();
    process.disconnect();
  }
});
if (process.send === undefined) {
  // Standalone, for instructions.mjs: prints the port, serves BENCH_HTTP_REQUESTS requests, then exits.
  const total = Number(process.env.BENCH_HTTP_REQUESTS);
  if (!Number.isInteger(total) || total < 1) {
    console.error('server.mjs runs under run.mjs, or alone with BENCH_HTTP_REQUESTS=<n>');
    process.exit(2);
  }
  server.on('request', (req, res) => {
    if (requests !== total) return;
    res.on('close', () => {
      server.close(() => process.exit(0));
      server.closeAllConnections();
    });
  });
  server.listen(0, '127.0.0.1', () => console.log(`listening ${server.address().port}`));
} else {
  server.listen(0, '127.0.0.1', () => process.send({ port: server.address().port }));
}
