import diagnostics_channel from 'node:diagnostics_channel';
import { IncomingMessage, ServerResponse, type IncomingHttpHeaders } from 'node:http';
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
  /** The next older request still open on the same connection (pipelined requests), if any. */
  older: RequestState | undefined = undefined;
  constructor(
    readonly span: CybSpan,
    readonly config: ServerConfig,
    readonly method: string,
    readonly path: string,
    // Let go of once the span has ended: a context that outlives the request keeps only the state.
    public req: IncomingMessage | undefined,
    public res: ServerResponse | undefined,
    public koa: KoaContextLike | undefined,
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

/*
 * Where each open request's state is found. Nothing is written on `req` or `res`: Express gives both a
 * new prototype on every request, and each property added to them afterwards costs a map transition
 * that V8 cannot cache (about 15,000 instructions per request for one symbol-keyed property, counted
 * with callgrind). So the open requests of a node:http connection hang on its socket, a stable object,
 * newest first; node:http reports each finished response on its 'http.server.response.finish'
 * channel, and the socket's own 'close' reports a client that went away. No listener is added per
 * request. Other servers' responses (Koa on HTTP/2's compatibility API, hand-made objects) keep a
 * 'close' listener per response and a WeakMap from request to state.
 */
const kOpen = Symbol('cyb.http.open');
type Connection = { [kOpen]?: RequestState | null; encrypted?: boolean; destroyed?: boolean };
const others = new WeakMap<object, RequestState>();
let othersInUse = false;

function asConnection(socket: unknown): Connection | undefined {
  return socket !== null && typeof socket === 'object' ? (socket as Connection) : undefined;
}

function connectionOf(req: IncomingMessage): Connection | undefined {
  return asConnection(req.socket);
}

function openOn(socket: Connection | undefined, req: object): RequestState | undefined {
  if (socket === undefined) return undefined;
  for (let state = socket[kOpen]; state !== undefined && state !== null; state = state.older) {
    if (state.req === req) return state;
  }
  return undefined;
}

function stateOn(socket: Connection | undefined, req: IncomingMessage): RequestState | undefined {
  return openOn(socket, req) ?? (othersInUse ? others.get(req) : undefined);
}

/** The state of the traced request `req`, while its response is open. */
export function stateOf(req: IncomingMessage): RequestState | undefined {
  return stateOn(connectionOf(req), req);
}

function track(state: RequestState, req: IncomingMessage, res: ServerResponse, socket: Connection | undefined): void {
  if (socket !== undefined && res instanceof ServerResponse) {
    const newest = socket[kOpen];
    if (newest === undefined) (socket as unknown as NodeJS.EventEmitter).once('close', onSocketClose);
    else if (newest !== null) state.older = newest;
    socket[kOpen] = state;
    if (!finishSubscribed) {
      finishSubscribed = true;
      diagnostics_channel.subscribe('http.server.response.finish', onResponseFinish);
    }
    // Gone already (a middleware before this one took its time): its 'close' has been and gone.
    if (socket.destroyed === true) onSocketClose.call(socket);
    return;
  }
  othersInUse = true;
  others.set(req, state);
  res.on('close', () => {
    others.delete(req);
    // HTTP/2's compatibility response reports a cancelled stream as finished, but never ended.
    end(state, res, !(res.writableEnded && res.writableFinished));
  });
}
let finishSubscribed = false;

/** Takes the open request `req` off its connection's list, and returns its state. */
function take(socket: Connection, req: object): RequestState | undefined {
  let newer: RequestState | undefined;
  for (let state = socket[kOpen]; state !== undefined && state !== null; state = state.older) {
    if (state.req === req) {
      if (newer === undefined) socket[kOpen] = state.older ?? null;
      else newer.older = state.older;
      state.older = undefined;
      return state;
    }
    newer = state;
  }
  return undefined;
}

function onResponseFinish(message: unknown): void {
  // A diagnostics_channel subscriber that throws is reported as an uncaught exception.
  try {
    const { request, response, socket } = message as { request: IncomingMessage; response: ServerResponse; socket: Connection | null };
    if (socket === null || typeof socket !== 'object') return;
    const state = take(socket, request);
    if (state !== undefined) end(state, response, false);
  } catch (err) {
    internalError('ending the SERVER span', err);
  }
}

function onSocketClose(this: Connection): void {
  let state = this[kOpen];
  this[kOpen] = null;
  while (state !== undefined && state !== null) {
    const older = state.older;
    state.older = undefined;
    if (state.res !== undefined) end(state, state.res, true);
    state = older;
  }
}

/*
 * node:http announces each request on 'http.server.request.start' just before it emits 'request',
 * while req still has node:http's own shape. Express then gives req a prototype of its own, and from
 * then on every read of a property of req misses V8's caches: each request's req gets a map of its
 * own, about 1,500 instructions a read, and more once many requests are in flight. What beginRequest
 * needs from req is read at the announcement and used when the middleware's request is that same one.
 * Watched from the first Express request on: Koa's requests keep node:http's shape.
 */
let started: IncomingMessage | undefined;
let startedSocket: Connection | undefined;
let startedUrl: string | undefined;
let startedMethod: string | undefined;
let startedHeaders: IncomingHttpHeaders | undefined;
let watchingStarts = false;

function onRequestStart(message: unknown): void {
  try {
    const { request, socket } = message as { request: IncomingMessage; socket: unknown };
    startedSocket = asConnection(socket);
    startedUrl = request.url;
    startedMethod = request.method;
    startedHeaders = request.headers;
    started = request;
  } catch (err) {
    started = undefined;
    internalError('reading a starting request', err);
  }
}

/** Reads each node:http request as it starts, for `beginRequest`. Idempotent. */
export function watchRequestStarts(): void {
  if (watchingStarts) return;
  watchingStarts = true;
  diagnostics_channel.subscribe('http.server.request.start', onRequestStart);
}

// What the router assigned to `req.route`, kept for reads after the response ended (a metrics or
// logging 'finish' listener), for as long as the request object lives.
const endedRoutes = new WeakMap<object, unknown>();

function routeAccessorGet(this: IncomingMessage): unknown {
  const state = stateOf(this);
  return state !== undefined ? state.route : endedRoutes.get(this);
}

function routeAccessorSet(this: IncomingMessage & { baseUrl?: unknown }, value: unknown): void {
  const state = stateOf(this);
  if (state === undefined) {
    // Not traced (an ignored path, nothing recording) or already ended: an own property, as the
    // assignment makes without the accessor.
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
 * attributes and the watch for the response's end. Returns undefined for an ignored path, and for a
 * request already traced by an outer application (an app mounted in another traced app).
 */
export function beginRequest(
  req: IncomingMessage & { originalUrl?: string },
  res: ServerResponse,
  config: ServerConfig,
  koa: KoaContextLike | undefined,
): { state: RequestState | undefined; context: ReturnType<typeof contextWithSpan> } | undefined {
  let socket: Connection | undefined;
  let url: string | undefined;
  let original: string | undefined;
  let headers: IncomingHttpHeaders;
  if (req === started) {
    // As node:http received it: the wire's method and URL, even if a middleware before this one
    // rewrote them.
    started = undefined;
    socket = startedSocket;
    url = startedUrl;
    original = startedMethod;
    headers = startedHeaders as IncomingHttpHeaders;
  } else {
    socket = connectionOf(req);
    url = req.originalUrl ?? req.url;
    original = req.method;
    headers = req.headers;
  }
  if (stateOn(socket, req) !== undefined) return undefined;
  const path = pathOf(url ?? '/');
  if (config.ignore !== undefined && config.ignore(path)) return undefined;
  const parent = extract(headers, config.extractOptions);
  original ??= 'GET';
  const method = KNOWN_METHODS.has(original) ? original : '_OTHER';
  const span = startSpan(method === '_OTHER' ? 'HTTP' : method, { kind: 'server', parent: parent ?? null });
  stats.serverSpans++;
  const context = contextWithSpan(span, parent);
  // The context must propagate either way; attributes, route capture and the end-of-response
  // listener are only worth their cost when someone receives the span.
  if (!span.isRecording() || !spansObserved()) return { state: undefined, context };
  // Written into the new span's own attributes: passing them to startSpan measured several µs per
  // request dearer, and setAttributes() copies them once more, checking values made right here.
  requestAttributes(span.attributes, headers, socket, method, original, path, config);
  const state = new RequestState(span, config, method, path, req, res, koa);
  track(state, req, res, socket);
  if (koa === undefined) captureRoutes(req);
  if (config.requestHeaders !== undefined) recordRequestHeaders(span, req, config.requestHeaders, config.maxHeaderValueLength);
  return { state, context };
}

/** Adds the request's attributes to `attributes`. */
function requestAttributes(
  attributes: Attributes,
  headers: IncomingHttpHeaders,
  socket: { encrypted?: boolean } | undefined,
  method: string,
  original: string,
  path: string,
  config: ServerConfig,
): void {
  attributes['http.request.method'] = method;
  attributes['url.path'] = cap(path, MAX_PATH_LENGTH);
  attributes['url.scheme'] = socket?.encrypted === true ? 'https' : 'http';
  if (method === '_OTHER') attributes['http.request.method_original'] = cap(original, 64);
  const host = headers.host;
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
  const agent = headers['user-agent'];
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
  const req = state.req as { route?: { path?: unknown }; baseUrl?: unknown } | undefined;
  if (req === undefined) return undefined;
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

/** Ends the request's span: the response finished, or (`aborted`) the client went away first. */
function end(state: RequestState, res: ServerResponse, aborted: boolean): void {
  if (state.span.ended) return;
  try {
    finish(state, res, aborted);
  } catch (err) {
    internalError('ending the SERVER span', err);
    if (!state.span.ended) state.span.end();
  }
  if (state.routeCaptured && state.req !== undefined) endedRoutes.set(state.req, state.route);
  state.req = undefined;
  state.res = undefined;
  state.koa = undefined;
}

function finish(state: RequestState, res: ServerResponse, aborted: boolean): void {
  const { span, config } = state;
  const route = routeTemplate(state);
  const statusCode = !aborted || res.headersSent ? res.statusCode : 0;
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
