// Shared by the test files: real servers on 127.0.0.1 port 0, a plain node:http client, and polling
// for finished spans (a SERVER span ends when node:http has flushed the response, about when the client
// has it).
import { randomBytes } from 'node:crypto';
import http, { type IncomingHttpHeaders, type Server } from 'node:http';
import net, { type AddressInfo } from 'node:net';
import type { Collector, SpanRecord } from '@cyb/core';

export function listen(server: Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
  });
}

export function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.closeAllConnections?.();
    server.close(() => resolve());
  });
}

export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  rawHeaders: string[];
  body: string;
}

export interface SendOptions {
  method?: string;
  /** A plain object, or a flat `[name, value, name, value]` list to send repeated headers as they are. */
  headers?: Record<string, string> | string[];
  body?: string;
  agent?: http.Agent | false;
}

/** One request with node:http, resolved with the whole response. */
export function send(port: number, path: string, options: SendOptions = {}): Promise<Reply> {
  let headers = options.headers;
  // A raw list goes out as written, so Node adds no Host header, which an HTTP/1.1 server requires.
  if (Array.isArray(headers) && !headers.some((h, i) => i % 2 === 0 && h.toLowerCase() === 'host')) {
    headers = ['Host', `127.0.0.1:${port}`, ...headers];
  }
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, path, method: options.method ?? 'GET', headers, agent: options.agent },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, rawHeaders: res.rawHeaders, body: Buffer.concat(chunks).toString('utf8') }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

/** Polls until `fn` returns something other than undefined. */
export async function waitFor<T>(fn: () => T | undefined, what = 'condition', timeoutMs = 3000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = fn();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

export function allSpans(collector: Collector): SpanRecord[] {
  return collector.traces().flatMap((t) => t.spans);
}

/** Waits for the one finished span matching `predicate`. */
export function spanWhere(collector: Collector, predicate: (s: SpanRecord) => boolean, what = 'span'): Promise<SpanRecord> {
  return waitFor(() => allSpans(collector).find(predicate), what);
}

export function hex(bytes: number): string {
  return randomBytes(bytes).toString('hex');
}

export function traceparent(traceId: string, spanId: string, flags = '01'): string {
  return `00-${traceId}-${spanId}-${flags}`;
}

/** `[version, traceId, parentId, flags]` of a well-formed version 00 traceparent, or undefined. */
export function parseTraceparent(value: unknown): [string, string, string, string] | undefined {
  if (typeof value !== 'string') return undefined;
  const m = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/.exec(value);
  return m === null ? undefined : [m[1] as string, m[2] as string, m[3] as string, m[4] as string];
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * Writes every request on one connection before reading anything (HTTP/1.1 pipelining), the last one
 * asking to close it, and resolves with the status codes of the responses in the order they came.
 */
export function pipelined(port: number, requests: { path: string; headers?: Record<string, string> }[]): Promise<number[]> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', reject);
    socket.on('close', () => {
      const text = Buffer.concat(chunks).toString('latin1');
      resolve([...text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1])));
    });
    const wire = requests.map(({ path, headers = {} }, i) => {
      const lines = [`GET ${path} HTTP/1.1`, `Host: 127.0.0.1:${port}`, ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)];
      if (i === requests.length - 1) lines.push('Connection: close');
      return `${lines.join('\r\n')}\r\n\r\n`;
    });
    // Not end(): a half-closed connection makes node:http abort the requests still open on it.
    socket.write(wire.join(''));
  });
}

/**
 * Pipelines GET /users/7 (a handler that awaits) and GET /unavailable (503) on one connection, each
 * with a trace of its own, then `more`; resolves with the status codes and the first two SERVER spans.
 */
export async function pipelinedPair(
  port: number,
  collector: Collector,
  more: { path: string }[] = [],
): Promise<{ statuses: number[]; first: SpanRecord; second: SpanRecord }> {
  const slow = hex(16);
  const quick = hex(16);
  const statuses = await pipelined(port, [
    { path: '/users/7', headers: { traceparent: traceparent(slow, hex(8)) } },
    { path: '/unavailable', headers: { traceparent: traceparent(quick, hex(8)) } },
    ...more,
  ]);
  const server = (traceId: string) => spanWhere(collector, (s) => s.traceId === traceId && s.kind === 'server', `SERVER span of ${traceId}`);
  return { statuses, first: await server(slow), second: await server(quick) };
}
