import http, { type ClientRequest, type IncomingMessage } from 'node:http';
import https from 'node:https';
import { syncBuiltinESMExports } from 'node:module';
import { internalError } from './debug.js';
import { beginClientRequest, clientResponse, endClientRequest, type ClientConfig, type ClientEntry, type HeaderAccess } from './client.js';

/**
 * Node publishes `http.client.request.created` from the end of the `ClientRequest` constructor, before
 * any header is written, since 22.12 and 23.2. Earlier versions (20.x) only have
 * `http.client.request.start`, which fires from `_finish()`, after the headers were rendered, so there
 * `http.request`/`http.get` (and the https pair) are wrapped instead. The response and error channels
 * exist on every supported version and end the span in both cases.
 */
export function hasRequestCreatedChannel(version = process.versions.node): boolean {
  const [major = 0, minor = 0] = version.split('.').map(Number);
  return major > 23 || (major === 23 && minor >= 2) || (major === 22 && minor >= 12);
}

export const NODE_CREATED_CHANNEL = 'http.client.request.created';
export const NODE_END_CHANNELS = ['http.client.response.finish', 'http.client.request.error'];

const nodeHeaders: HeaderAccess<ClientRequest> = {
  has: (req, name) => req.hasHeader(name),
  remove: (req, name) => req.removeHeader(name),
  add: (req, name, value) => req.setHeader(name, value),
};

function portOf(req: ClientRequest): number | undefined {
  const host = req.getHeader('host');
  if (typeof host !== 'string') return undefined;
  const colon = host.lastIndexOf(':');
  if (colon === -1 || host.endsWith(']')) return undefined;
  const port = Number(host.slice(colon + 1));
  return Number.isInteger(port) ? port : undefined;
}

export interface NodeClientTracer {
  /** Called with each new `ClientRequest`, before its headers are written. */
  onRequest(req: ClientRequest): void;
  /** Handler for the response and error channels. */
  onChannel(message: unknown, channel: string): void;
}

export function nodeClientTracer(config: ClientConfig): NodeClientTracer {
  const entries = new WeakMap<ClientRequest, ClientEntry>();

  function onRequest(req: ClientRequest): void {
    try {
      const host = req.host.startsWith('[') ? req.host.slice(1, -1) : req.host;
      const target = { method: req.method, protocol: req.protocol, host, port: portOf(req), path: req.path };
      // Headers passed as an array, or an `Expect` header, make Node write the head at once.
      const entry = beginClientRequest(config, req, target, req.headersSent ? undefined : nodeHeaders);
      if (entry !== undefined) entries.set(req, entry);
    } catch (err) {
      internalError('starting the CLIENT span', err);
    }
  }

  function onResponseClose(this: IncomingMessage & { req?: ClientRequest }): void {
    const req = this.req;
    const entry = req === undefined ? undefined : entries.get(req);
    if (req === undefined || entry === undefined) return;
    entries.delete(req);
    endClientRequest(entry, this.complete ? undefined : new Error('response aborted before it was complete'));
  }

  function onChannel(message: unknown, channel: string): void {
    const msg = message as { request?: ClientRequest; response?: IncomingMessage; error?: unknown };
    const req = msg.request;
    if (req === undefined) return;
    if (channel === NODE_CREATED_CHANNEL) {
      onRequest(req);
      return;
    }
    const entry = entries.get(req);
    if (entry === undefined) return;
    try {
      if (channel === 'http.client.response.finish' && msg.response !== undefined) {
        // Published when the response head arrives; the span lasts until the body is done ('close'
        // follows 'end', or an abort). A 'close' listener does not switch the stream into flowing mode.
        clientResponse(entry, msg.response.statusCode ?? 0);
        msg.response.once('close', onResponseClose);
      } else if (channel === 'http.client.request.error') {
        entries.delete(req);
        endClientRequest(entry, msg.error ?? new Error('request failed'));
      }
    } catch (err) {
      internalError(`handling ${channel}`, err);
    }
  }

  return { onRequest, onChannel };
}

type RequestFn = typeof http.request;
type GetFn = typeof http.get;

/**
 * Wraps `request` and `get` of `node:http` and `node:https` so each new `ClientRequest` is handed to
 * `onRequest` before its head is written. `get` is rebuilt on the wrapped `request` (Node's own `get`
 * calls the module-private `request` and ends the request at once). Returns the undo function; if
 * someone else wrapped the functions after us, ours are left in place but turn into pass-throughs.
 */
export function patchNodeClients(onRequest: (req: ClientRequest) => void): () => void {
  const undo = [patchModule(http, onRequest), patchModule(https as unknown as typeof http, onRequest)];
  syncBuiltinESMExports();
  return () => {
    for (const fn of undo) fn();
    syncBuiltinESMExports();
  };
}

function patchModule(mod: typeof http, onRequest: (req: ClientRequest) => void): () => void {
  const originalRequest = mod.request;
  const originalGet = mod.get;
  let enabled = true;
  const request = function request(this: unknown, ...args: unknown[]): ClientRequest {
    const req = (originalRequest as (...a: unknown[]) => ClientRequest).apply(this, args);
    if (enabled) onRequest(req);
    return req;
  } as RequestFn;
  const get = function get(this: unknown, ...args: unknown[]): ClientRequest {
    const req = (request as (...a: unknown[]) => ClientRequest).apply(this, args);
    req.end();
    return req;
  } as GetFn;
  mod.request = request;
  mod.get = get;
  return () => {
    enabled = false;
    if (mod.request === request) mod.request = originalRequest;
    if (mod.get === get) mod.get = originalGet;
  };
}
