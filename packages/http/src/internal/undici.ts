import { internalError } from './debug.js';
import { beginClientRequest, clientResponse, endClientRequest, type ClientConfig, type ClientEntry, type HeaderAccess } from './client.js';

/**
 * The parts of undici's `Request` (what `undici:request:create` publishes) used here. undici 6 and 7
 * (Node 20 and later) keep headers as a flat `[name, value, ...]` array; undici 5 as one
 * `name: value\r\n` string. Both are handled.
 */
export interface UndiciRequest {
  method: string;
  origin: string | URL;
  path: string;
  headers: string[] | string;
  addHeader(name: string, value: string): unknown;
}

export const UNDICI_CHANNELS = ['undici:request:create', 'undici:request:headers', 'undici:request:trailers', 'undici:request:error'];

function headerLines(headers: string): string[] {
  return headers.split('\r\n').filter((line) => line !== '');
}

const undiciHeaders: HeaderAccess<UndiciRequest> = {
  has(request, lowerName) {
    const headers = request.headers;
    if (Array.isArray(headers)) {
      for (let i = 0; i < headers.length; i += 2) if (String(headers[i]).toLowerCase() === lowerName) return true;
      return false;
    }
    if (typeof headers !== 'string') return false;
    return headerLines(headers).some((line) => line.slice(0, line.indexOf(':')).trim().toLowerCase() === lowerName);
  },
  remove(request, lowerName) {
    const headers = request.headers;
    if (Array.isArray(headers)) {
      // In place: undici holds this very array.
      for (let i = headers.length - 2; i >= 0; i -= 2) if (String(headers[i]).toLowerCase() === lowerName) headers.splice(i, 2);
    } else if (typeof headers === 'string') {
      const kept = headerLines(headers).filter((line) => line.slice(0, line.indexOf(':')).trim().toLowerCase() !== lowerName);
      request.headers = kept.length === 0 ? '' : kept.join('\r\n') + '\r\n';
    }
  },
  add(request, lowerName, value) {
    request.addHeader(lowerName, value);
  },
};

function targetOf(request: UndiciRequest): { protocol: string; host: string; port: number | undefined } {
  const origin = typeof request.origin === 'string' ? new URL(request.origin) : request.origin;
  const host = origin.hostname.startsWith('[') ? origin.hostname.slice(1, -1) : origin.hostname;
  return { protocol: origin.protocol, host, port: origin.port === '' ? undefined : Number(origin.port) };
}

/** One handler for undici's request channels: starts, annotates and ends CLIENT spans. */
export function undiciHandler(config: ClientConfig): (message: unknown, channel: string) => void {
  const entries = new WeakMap<object, ClientEntry>();
  return (message, channel) => {
    const msg = message as { request?: UndiciRequest; response?: { statusCode?: number }; error?: unknown };
    const request = msg.request;
    if (request === undefined || request === null) return;
    try {
      if (channel === 'undici:request:create') {
        const { protocol, host, port } = targetOf(request);
        const entry = beginClientRequest(config, request, { method: request.method, protocol, host, port, path: request.path }, undiciHeaders);
        if (entry !== undefined) entries.set(request, entry);
        return;
      }
      const entry = entries.get(request);
      if (entry === undefined) return;
      if (channel === 'undici:request:headers') {
        clientResponse(entry, Number(msg.response?.statusCode ?? 0));
      } else if (channel === 'undici:request:trailers') {
        entries.delete(request);
        endClientRequest(entry);
      } else if (channel === 'undici:request:error') {
        entries.delete(request);
        endClientRequest(entry, msg.error ?? new Error('request failed'));
      }
    } catch (err) {
      internalError(`handling ${channel}`, err);
    }
  };
}
