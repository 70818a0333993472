import type { IncomingMessage, ServerResponse } from 'node:http';
import { propagationFormats, withContext, type PropagationFormat } from '@cyb/core';
import { outgoing, spansObserved } from './internal/activity.js';
import { internalError } from './internal/debug.js';
import { compileHeaderList, compilePathTest, optionalFunction, positiveInteger, type PathMatcher } from './internal/options.js';
import { beginRequest, noteError, stateOf, watchRequestStarts, type KoaContextLike, type ServerConfig, type SpanNameInfo } from './internal/server.js';

export type { PathMatcher } from './internal/options.js';
export type { SpanNameInfo } from './internal/server.js';

/** Options of `traceHttp()`. Everything is checked and normalised once, when the middleware is made. */
export interface TraceHttpOptions {
  /** Formats read from incoming requests, in order. Default: `configure()`'s (`['w3c', 'b3', 'b3multi']`). */
  formats?: readonly PropagationFormat[];
  /** Paths (no query string) left untraced, such as health checks: exact strings, patterns or predicates. */
  ignore?: PathMatcher | readonly PathMatcher[];
  /** Request headers recorded as `http.request.header.<name>` (string arrays). Nothing by default. */
  requestHeaders?: readonly string[];
  /** Response headers recorded as `http.response.header.<name>` (string arrays). Nothing by default. */
  responseHeaders?: readonly string[];
  /** Recorded header values (and the user agent) are cut to this many characters. Default 256. */
  maxHeaderValueLength?: number;
  /** Names the span once the response is done; default `METHOD /route/template`, or `METHOD`. */
  spanName?: (info: SpanNameInfo) => string;
  /**
   * Trace every request even when nothing uses the result: no subscriber receives spans (no
   * `Collector`, no exporter) and `traceOutgoing()` is not running. Set it when your own code reads
   * `currentSpan()` or calls `inject()` (log correlation, a hand-written client). Default false: such
   * requests go straight to `next()`, so an installed but unused `traceHttp()` costs close to nothing,
   * as `span()` does without subscribers.
   */
  always?: boolean;
}

type ExpressNext = (err?: unknown) => void;
type KoaNext = () => Promise<unknown>;

/**
 * The middleware `traceHttp()` returns. Express calls it as `(req, res, next)`, Koa as `(ctx, next)`;
 * it tells them apart on each call.
 */
export type TraceHttpMiddleware = {
  (req: IncomingMessage, res: ServerResponse, next: ExpressNext): void;
  (ctx: KoaContextLike, next: KoaNext): Promise<unknown>;
};

function isThenable(value: unknown): value is Promise<unknown> {
  return value !== null && typeof value === 'object' && typeof (value as { then?: unknown }).then === 'function';
}

/**
 * Traces every request through an Express (4, 5) or Koa (2, 3) application: the incoming W3C or B3
 * context is extracted (a new trace when absent or invalid), a SERVER span named
 * `METHOD /route/template` wraps the request and is the active context for the whole handler chain,
 * and the span ends when the response finishes, or is marked aborted when the client goes away.
 * Register it first. While nothing uses spans (no Collector or exporter, no `traceOutgoing()`) it
 * passes requests straight on, unless `always` is set. In Express, add `traceHttpErrors()` after the routes to record thrown errors.
 *
 * @example
 * import express from 'express';
 * import { traceHttp, traceHttpErrors } from '@cyb/http';
 * const app = express();
 * app.use(traceHttp({ ignore: ['/health'], requestHeaders: ['x-request-id'] }));
 * app.get('/users/:id', async (req, res) => res.json(await loadUser(req.params.id)));
 * app.use(traceHttpErrors());
 *
 * @example
 * import Koa from 'koa';
 * const app = new Koa();
 * app.use(traceHttp());
 * app.use(router.routes());
 */
export function traceHttp(options: TraceHttpOptions = {}): TraceHttpMiddleware {
  if (options === null || typeof options !== 'object') throw new TypeError('traceHttp options must be an object');
  const config: ServerConfig = {
    extractOptions: options.formats === undefined ? undefined : { formats: propagationFormats(options.formats, 'formats') },
    ignore: compilePathTest(options.ignore, 'ignore'),
    requestHeaders: compileHeaderList(options.requestHeaders, 'requestHeaders', 'http.request.header.'),
    responseHeaders: compileHeaderList(options.responseHeaders, 'responseHeaders', 'http.response.header.'),
    maxHeaderValueLength: positiveInteger(options.maxHeaderValueLength, 256, 'maxHeaderValueLength'),
    spanName: optionalFunction(options.spanName, 'spanName'),
    always: options.always === true,
  };

  function express(req: IncomingMessage, res: ServerResponse, next: ExpressNext): void {
    // Nothing would use the span. (An app mounted inside another traced app, whose middleware
    // already owns this request, is told apart by beginRequest.)
    if (!config.always && !outgoing.running && !spansObserved()) return next();
    watchRequestStarts();
    let begun;
    try {
      begun = beginRequest(req, res, config, undefined);
    } catch (err) {
      internalError('starting the SERVER span', err);
    }
    if (begun === undefined) return next();
    return withContext(begun.context, next);
  }

  function koa(ctx: KoaContextLike, next: KoaNext): unknown {
    if (!config.always && !outgoing.running && !spansObserved()) return next();
    let begun;
    try {
      begun = beginRequest(ctx.req, ctx.res, config, ctx);
    } catch (err) {
      internalError('starting the SERVER span', err);
    }
    if (begun === undefined) return next();
    const result = withContext(begun.context, next);
    const state = begun.state;
    if (state === undefined || !isThenable(result)) return result;
    // The same error object goes on to Koa's own handling; the span only takes note of it.
    return result.then(undefined, (err: unknown) => {
      noteError(state, err);
      throw err;
    });
  }

  return function traceHttp(reqOrCtx: unknown, resOrNext: unknown, next?: unknown): unknown {
    if (typeof next === 'function') return express(reqOrCtx as IncomingMessage, resOrNext as ServerResponse, next as ExpressNext);
    if (typeof resOrNext === 'function' && reqOrCtx !== null && typeof reqOrCtx === 'object' && 'req' in reqOrCtx && 'res' in reqOrCtx) {
      return koa(reqOrCtx as KoaContextLike, resOrNext as KoaNext);
    }
    // Neither shape: stay out of the way rather than break the request.
    internalError('traceHttp', new TypeError('called with neither (req, res, next) nor (ctx, next)'));
    if (typeof resOrNext === 'function') return (resOrNext as () => unknown)();
    return undefined;
  } as TraceHttpMiddleware;
}

/**
 * Express error middleware that records the error on the request's SERVER span and passes the very
 * same error on with `next(err)`, so the application's own error handlers see exactly what they would
 * without tracing. Register it after the routes and before your error handlers. (Koa needs nothing:
 * `traceHttp()` sees thrown errors itself.)
 *
 * @example
 * app.use(traceHttp());
 * app.use('/api', api);
 * app.use(traceHttpErrors());
 * app.use((err, req, res, next) => res.status(500).json({ error: err.message }));
 */
export function traceHttpErrors(): (err: unknown, req: IncomingMessage, res: ServerResponse, next: ExpressNext) => void {
  return function traceHttpErrors(err: unknown, req: IncomingMessage, _res: ServerResponse, next: ExpressNext): void {
    const state = stateOf(req);
    if (state !== undefined) noteError(state, err);
    next(err);
  };
}
