import { IncomingMessage, type ServerResponse } from 'node:http';
import { contextWithSpan, extract, SpanNames, startSpan, type Attributes, type CybSpan, type PropagationFormat } from '@cyb/core';
import { spansObserved } from './activity.js';
import { hookError, internalError, stats } from './debug.js';
import { cap, recordRequestHeaders, recordResponseHeaders } from './headers.js';
import type { HeaderList, PathTest } from './options.js';

/** What the `spanName` hook is told when the response is done. */
export interface SpanNameInfo {
  /** The request method as received. */
  method: string;
  /** The matched route template (`/users/:id`), or undefined when no route matched. */
  route: string | undefined;
  /** The request path, without the query string. */
  path: string;
  /** The response status code (0 when the client went away before any response was sent). */
  statusCode: number;
}

/** `traceHttp()` options after their one-time normalisation. */
export interface ServerConfig {
  readonly extractOptions: { formats: readonly PropagationFormat[] } | undefined;
  readonly ignore: PathTest | undefined;
  readonly requestHeaders: HeaderList | undefined;
  readonly responseHeaders: HeaderList | undefined;
  readonly maxHeaderValueLength: number;
  readonly spanName: ((info: SpanNameInfo) => string) | undefined;
  readonly always: boolean;
}

/** The parts of a Koa context this package reads. */
export interface KoaContextLike {
  req: IncomingMessage;
  res: ServerResponse;
  _matchedRoute?: unknown;
}

/** One traced request. A class so every instance shares one shape on the hot path. */
export class RequestState {
  /** The Express route object last matched, with the `baseUrl` in force when it matched. */
  route: unknown = undefined;
  routeBase = '';
  routeCaptured = false;
  hasError = false;
  error: unknown = undefined;
  constructor(
    readonly span: CybSpan,
    readonly config: ServerConfig,
    readonly method: string,
    readonly path: string,
    readonly req: IncomingMessage,
    readonly koa: KoaContextLike | undefined,
  ) {}
}

// OpenTelemetry HTTP semantic conventions: well-known methods are kept, anything else becomes _OTHER.
const KNOWN_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH', 'QUERY']);
const MAX_PATH_LENGTH = 2048;
const MAX_HOST_LENGTH = 255;
const STATUS_ERROR = 2; // SpanStatusCode.ERROR of @opentelemetry/api

export function pathOf(url: string): string {
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

const kState = Symbol('cyb.http.request');
type Traced = { [kState]?: RequestState };

/**
 * The state of each traced request hangs on `req` under a symbol, for the route accessor and the
 * Express error middleware. Not a WeakMap: one entry per request, keyed by objects that die young,
 * kept the old generation growing and cost more in garbage collection than the property costs.
 */
export const states = {
  get: (req: object): RequestState | undefined => (req as Traced)[kState],
  has: (req: object): boolean => (req as Traced)[kState] !== undefined,
  set: (req: object, state: RequestState): void => {
    (req as Traced)[kState] = state;
  },
};

function routeAccessorGet(this: Traced): unknown {
  return this[kState]?.route;
}

function routeAccessorSet(this: Traced & { baseUrl?: unknown }, value: unknown): void {
  const state = this[kState];
  if (state === undefined) {
    // Not traced (an ignored path, nothing recording): an own property, as the assignment makes
    // without the accessor.
    Object.defineProperty(this, 'route', { value, writable: true, enumerable: true, configurable: true });
    return;
  }
  state.route = value;
  state.routeCaptured = true;
  // The router assigns `req.route` just before running the route's handlers; `baseUrl` is then the
  // mount path of the router that owns the route. By the time the response ends an outer router may
  // have restored a shorter `baseUrl` (an error handled further up), so it is taken now.
  state.routeBase = typeof this.baseUrl === 'string' ? this.baseUrl : '';
}

const routeDescriptor: PropertyDescriptor = { configurable: true, enumerable: true, get: routeAccessorGet, set: routeAccessorSet };

/**
 * Express gives each application a request prototype of its own (`app.request`, the documented place
 * to extend requests; it has an own `app` property). A `route` accessor defined there once catches
 * the router's `req.route = route` for every request of that application, without a per-request
 * `defineProperty`. Plain `http.IncomingMessage.prototype` is never touched.
 */
function captureRoutes(req: object): void {
  const proto = Object.getPrototypeOf(req) as object | null;
  if (proto === null || proto === IncomingMessage.prototype || capturing.has(proto)) return;
  capturing.add(proto);
  if (!Object.prototype.hasOwnProperty.call(proto, 'app') || Object.getOwnPropertyDescriptor(proto, 'route') !== undefined) return;
  Object.defineProperty(proto, 'route', routeDescriptor);
}
const capturing = new WeakSet<object>();

/**
 * Extracts the incoming context, starts the SERVER span and, when anyone records spans, sets up the
 * attributes and the end-of-response listener. Returns undefined for an ignored path.
 */
export function beginRequest(
  req: IncomingMessage & { originalUrl?: string },
  res: ServerResponse,
  config: ServerConfig,
  koa: KoaContextLike | undefined,
): { state: RequestState | undefined; context: ReturnType<typeof contextWithSpan> } | undefined {
  const path = pathOf(req.originalUrl ?? req.url ?? '/');
  if (config.ignore !== undefined && config.ignore(path)) return undefined;
  const parent = extract(req.headers, config.extractOptions);
  const original = req.method ?? 'GET';
  const method = KNOWN_METHODS.has(original) ? original : '_OTHER';
  const span = startSpan(method === '_OTHER' ? 'HTTP' : method, { kind: 'server', parent: parent ?? null });
  stats.serverSpans++;
  const context = contextWithSpan(span, parent);
  // The context must propagate either way; attributes, route capture and the end-of-response
  // listener are only worth their cost when someone receives the span.
  if (!span.isRecording() || !spansObserved()) return { state: undefined, context };
  // Written into the new span's own attributes: passing them to startSpan measured several µs per
  // request dearer, and setAttributes() copies them once more, checking values made right here.
  requestAttributes(span.attributes, req, method, original, path, config);
  const state = new RequestState(span, config, method, path, req, koa);
  states.set(req, state);
  if (koa === undefined) captureRoutes(req);
  if (config.requestHeaders !== undefined) recordRequestHeaders(span, req, config.requestHeaders, config.maxHeaderValueLength);
  res.on('close', () => onResponseClose(state, res));
  return { state, context };
}

/** Adds the request's attributes to `attributes`. */
function requestAttributes(attributes: Attributes, req: IncomingMessage, method: string, original: string, path: string, config: ServerConfig): void {
  attributes['http.request.method'] = method;
  attributes['url.path'] = cap(path, MAX_PATH_LENGTH);
  attributes['url.scheme'] = (req.socket as { encrypted?: boolean } | null)?.encrypted === true ? 'https' : 'http';
  if (method === '_OTHER') attributes['http.request.method_original'] = cap(original, 64);
  const host = req.headers.host;
  if (typeof host === 'string' && host !== '') {
    const value = cap(host, MAX_HOST_LENGTH);
    // `[v6]:port`, `name:port` or a bare name; the Host header is client input, so nothing is assumed.
    const close = value.startsWith('[') ? value.indexOf(']') : -1;
    const colon = value.indexOf(':', close === -1 ? 0 : close);
    const address = colon === -1 ? value : value.slice(0, colon);
    attributes['server.address'] = close === -1 ? address : address.slice(1, close);
    if (colon !== -1) {
      const port = Number(value.slice(colon + 1));
      if (Number.isInteger(port) && port > 0 && port < 65536) attributes['server.port'] = port;
    }
  }
  const agent = req.headers['user-agent'];
  if (typeof agent === 'string') attributes['user_agent.original'] = cap(agent, config.maxHeaderValueLength);
}

/** Records an error a handler threw, to be reported when the response ends. */
export function noteError(state: RequestState, err: unknown): void {
  if (state.hasError) return;
  state.hasError = true;
  state.error = err;
}

function routeTemplate(state: RequestState): string | undefined {
  if (state.koa !== undefined) {
    const matched = state.koa._matchedRoute;
    return matched === undefined || matched === null || matched === '' ? undefined : String(matched);
  }
  // Captured by the accessor, or else (a mounted sub-application has a request prototype of its own)
  // read from the request now, with the `baseUrl` now in force.
  const req = state.req as { route?: { path?: unknown }; baseUrl?: unknown };
  // An own `route` property was set after any captured one, by a sub-application's router.
  const captured = state.routeCaptured && !Object.prototype.hasOwnProperty.call(req, 'route');
  const route = (captured ? state.route : req.route) as { path?: unknown } | undefined;
  if (route === undefined || route === null || route.path === undefined) return undefined;
  const tail = String(route.path);
  const base = captured ? state.routeBase : typeof req.baseUrl === 'string' ? req.baseUrl : '';
  if (base === '' || base === '/') return tail;
  return tail === '/' ? base : base + tail;
}

// `METHOD /route`, one string per method and route, shared by every span of that route.
const routeNames = new Map<string, SpanNames>();
function routeName(method: string, route: string): string {
  let names = routeNames.get(method);
  if (names === undefined) {
    names = new SpanNames(method);
    // Methods are the known ones plus `HTTP`, but the map stays bounded whatever arrives.
    if (routeNames.size < 64) routeNames.set(method, names);
  }
  return names.of(route);
}

function onResponseClose(state: RequestState, res: ServerResponse): void {
  if (state.span.ended) return;
  try {
    finish(state, res);
  } catch (err) {
    internalError('ending the SERVER span', err);
    if (!state.span.ended) state.span.end();
  }
}

function finish(state: RequestState, res: ServerResponse): void {
  const { span, config } = state;
  const route = routeTemplate(state);
  const aborted = !res.writableFinished;
  const statusCode = res.headersSent || !aborted ? res.statusCode : 0;
  // Written straight into the attributes, as at the start: setAttribute's store is shared by every
  // key of every span, and the values here need no check.
  const attributes = span.attributes;
  if (route !== undefined) attributes['http.route'] = cap(route, MAX_PATH_LENGTH);
  if (statusCode !== 0) attributes['http.response.status_code'] = statusCode;
  let name = route === undefined ? span.name : routeName(span.name, route);
  if (config.spanName !== undefined) {
    try {
      const chosen = config.spanName({ method: state.method, route, path: state.path, statusCode });
      if (typeof chosen === 'string' && chosen !== '') name = chosen;
    } catch (err) {
      hookError('spanName', err);
    }
  }
  span.updateName(name);
  if (config.responseHeaders !== undefined && res.headersSent) {
    recordResponseHeaders(span, res, config.responseHeaders, config.maxHeaderValueLength);
  }
  if (aborted) {
    stats.aborted++;
    span.setAttribute('http.aborted', true);
    span.setAttribute('error.type', 'aborted');
    if (state.hasError) span.recordException(state.error as Error);
    span.setStatus({ code: STATUS_ERROR, message: 'client closed the connection before the response finished' });
  } else if (statusCode >= 500) {
    span.setAttribute('error.type', String(statusCode));
    if (state.hasError) span.fail(state.error);
    else span.setStatus({ code: STATUS_ERROR, message: `HTTP ${statusCode}` });
  } else if (state.hasError) {
    // A 4xx the application chose to answer with (an HttpError, say) is the client's fault: the
    // exception is kept as an event but the span is not an error (OpenTelemetry HTTP conventions).
    span.recordException(state.error as Error);
  }
  span.end();
}
