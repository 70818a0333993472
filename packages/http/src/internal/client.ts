import { contextWithSpan, currentSpan, inject, startSpan, type CybSpan, type PropagationFormat } from '@cyb/core';
import { spansObserved } from './activity.js';
import { internalError, stats } from './debug.js';
import { cap } from './headers.js';
import type { PathTest } from './options.js';

/** `traceOutgoing()` options after their one-time normalisation. */
export interface ClientConfig {
  readonly injectFormats: readonly PropagationFormat[] | undefined;
  readonly overwrite: boolean;
  readonly ignore: PathTest | undefined;
  readonly rootSpans: boolean;
}

/**
 * How one transport's request object exposes its headers. Each transport (undici's `Request`, Node's
 * `ClientRequest`) gets one, so the decisions below are made once for both.
 */
export interface HeaderAccess<R> {
  has(request: R, lowerName: string): boolean;
  remove(request: R, lowerName: string): void;
  add(request: R, lowerName: string, value: string): void;
}

/** What the channel handlers need to finish a CLIENT span; kept only while someone records spans. */
export interface ClientEntry {
  readonly span: CybSpan;
  statusCode: number;
}

const KNOWN_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH', 'QUERY']);
const MAX_URL_LENGTH = 2048;
const STATUS_ERROR = 2; // SpanStatusCode.ERROR of @opentelemetry/api

// A header that names a parent span. If the caller wrote one, adding ours would give the server two
// different parents to choose from, so none of ours is written.
const PARENT_HEADERS = ['traceparent', 'b3', 'x-b3-traceid'];
// Every header any format may write, removed before writing when `overwrite` is on.
const TRACE_HEADERS = ['traceparent', 'tracestate', 'b3', 'x-b3-traceid', 'x-b3-spanid', 'x-b3-parentspanid', 'x-b3-sampled', 'x-b3-flags'];

export interface OutgoingTarget {
  method: string;
  /** `http:` or `https:`. */
  protocol: string;
  /** Host name or address, without port or brackets. */
  host: string;
  port: number | undefined;
  /** Path and query as sent. */
  path: string;
}

function urlOf(target: OutgoingTarget): string {
  const q = target.path.indexOf('?');
  const path = q === -1 ? target.path : target.path.slice(0, q);
  const host = target.host.includes(':') ? `[${target.host}]` : target.host;
  return `${target.protocol}//${host}${target.port === undefined ? '' : `:${target.port}`}${path}`;
}

/**
 * Starts the CLIENT span of an outgoing request (child of the active span) and writes the trace
 * headers into it through `access` (when given), keeping any the caller set. Returns the entry to finish the span
 * with, or undefined when the request is not traced or nobody records spans.
 */
export function beginClientRequest<R>(
  config: ClientConfig,
  request: R,
  target: OutgoingTarget,
  access: HeaderAccess<R> | undefined,
): ClientEntry | undefined {
  if (!config.rootSpans && currentSpan() === undefined) return undefined;
  const url = urlOf(target);
  if (config.ignore !== undefined && config.ignore(url)) return undefined;
  const method = KNOWN_METHODS.has(target.method) ? target.method : '_OTHER';
  const span = startSpan(method === '_OTHER' ? 'HTTP' : method, { kind: 'client' });
  stats.clientSpans++;
  // No access: the request's head is already written (the span is still worth having).
  if (access === undefined) stats.headersTooLate++;
  else injectInto(config, request, span, access);
  if (!span.isRecording() || !spansObserved()) return undefined;
  span.setAttribute('http.request.method', method);
  if (method === '_OTHER') span.setAttribute('http.request.method_original', cap(target.method, 64));
  span.setAttribute('server.address', cap(target.host, 255));
  const port = target.port ?? (target.protocol === 'https:' ? 443 : 80);
  span.setAttribute('server.port', port);
  // The query string is left out: it often carries tokens.
  span.setAttribute('url.full', cap(url, MAX_URL_LENGTH));
  return { span, statusCode: 0 };
}

function injectInto<R>(config: ClientConfig, request: R, span: CybSpan, access: HeaderAccess<R>): void {
  const headers: Record<string, string> = {};
  inject(headers, config.injectFormats === undefined ? { context: contextWithSpan(span) } : { context: contextWithSpan(span), formats: config.injectFormats });
  const names = Object.keys(headers);
  if (names.length === 0) return;
  if (config.overwrite) {
    for (const name of TRACE_HEADERS) if (access.has(request, name)) access.remove(request, name);
    for (const name of names) {
      if (access.has(request, name)) access.remove(request, name);
      access.add(request, name, headers[name] as string);
    }
    return;
  }
  for (const name of PARENT_HEADERS) {
    if (access.has(request, name)) {
      stats.callerHeadersKept++;
      return;
    }
  }
  for (const name of names) {
    if (!access.has(request, name)) access.add(request, name, headers[name] as string);
  }
}

/** Takes note of the response status. */
export function clientResponse(entry: ClientEntry, statusCode: number): void {
  entry.statusCode = statusCode;
  if (statusCode > 0) entry.span.setAttribute('http.response.status_code', statusCode);
}

/** Ends the CLIENT span; 4xx and 5xx are errors for a client (OpenTelemetry HTTP conventions). */
export function endClientRequest(entry: ClientEntry, error?: unknown): void {
  const { span } = entry;
  if (span.ended) return;
  try {
    if (error !== undefined) {
      const code = (error as { code?: unknown } | null)?.code;
      span.setAttribute('error.type', typeof code === 'string' ? code : (error as Error | null)?.name ?? 'Error');
      span.fail(error);
    } else if (entry.statusCode >= 400) {
      span.setAttribute('error.type', String(entry.statusCode));
      span.setStatus({ code: STATUS_ERROR, message: `HTTP ${entry.statusCode}` });
    }
  } catch (err) {
    internalError('finishing the CLIENT span', err);
  }
  span.end();
}
