import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { debuglog } from 'node:util';
import { createGunzip, createInflate } from 'node:zlib';
import { fromOtlpJson, OtlpDecodeError, type SpanRecord } from '@cyb/core';

const debug = debuglog('cyb:cli');

/** Options of {@link OtlpReceiver}. */
export interface OtlpReceiverOptions {
  /** Called with the spans of each accepted request. A throw is logged and the request still succeeds. */
  onSpans: (spans: SpanRecord[]) => void;
  /** Address to listen on. Default `127.0.0.1`: only this machine can send. */
  host?: string;
  /** Port; 0 (the default) picks a free one. */
  port?: number;
  /** Largest request body accepted, after decompression. Default 8 MiB; larger ones get 413. */
  maxBodyBytes?: number;
  /** Accept requests from other machines too. Default false, whatever `host` is. */
  allowRemote?: boolean;
}

/** What the receiver has seen, for progress and the summary. */
export interface OtlpReceiverStats {
  requests: number;
  accepted: number;
  spans: number;
  /** Requests refused, by HTTP status. */
  rejected: Record<string, number>;
  /** When the last accepted request arrived (ms since the epoch), 0 before any. */
  lastRequestAt: number;
  /** Requests still being read or handled. */
  inFlight: number;
}

export const DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024;
/** A whole request (headers and body) must arrive within this, so a trickling sender cannot hold a slot forever. */
const REQUEST_TIMEOUT_MS = 30_000;
const HEADERS_TIMEOUT_MS = 10_000;
/** `close()` lets in-flight requests finish for this long, then cuts every connection still open. */
const CLOSE_DEADLINE_MS = 1000;

/**
 * An OTLP/HTTP JSON trace receiver: `POST /v1/traces` with `Content-Type: application/json`
 * (gzip or deflate allowed), as sent by `OtlpHttpExporter` or any OpenTelemetry SDK set to
 * `http/json`. A body over the limit gets 413, another content type 415, a body that is not OTLP
 * JSON 400; none of them stop it.
 *
 * @example
 * ```ts
 * const collector = new Collector();
 * const receiver = new OtlpReceiver({ onSpans: (spans) => spans.forEach((s) => collector.add(s)) });
 * const { port } = await receiver.listen();
 * // ... OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://127.0.0.1:<port>/v1/traces
 * await receiver.close();
 * ```
 */
export class OtlpReceiver {
  readonly #options: Required<OtlpReceiverOptions>;
  readonly #server: http.Server;
  readonly #stats: OtlpReceiverStats = { requests: 0, accepted: 0, spans: 0, rejected: {}, lastRequestAt: 0, inFlight: 0 };

  constructor(options: OtlpReceiverOptions) {
    if (typeof options?.onSpans !== 'function') throw new TypeError('OtlpReceiver: onSpans must be a function');
    this.#options = {
      host: '127.0.0.1',
      port: 0,
      maxBodyBytes: DEFAULT_MAX_BODY_BYTES,
      allowRemote: false,
      ...options,
    };
    this.#server = http.createServer(
      { requestTimeout: REQUEST_TIMEOUT_MS, headersTimeout: HEADERS_TIMEOUT_MS },
      (req, res) => this.#handle(req, res),
    );
    // Exporters keep connections alive; do not let an idle one hold `close()` up.
    this.#server.keepAliveTimeout = 2000;
  }

  /** Starts listening; resolves with the address actually bound. */
  listen(): Promise<{ host: string; port: number; url: string }> {
    return new Promise((resolve, reject) => {
      const onError = (error: Error): void => reject(error);
      this.#server.once('error', onError);
      this.#server.listen(this.#options.port, this.#options.host, () => {
        this.#server.off('error', onError);
        const address = this.#server.address() as AddressInfo;
        const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
        resolve({ host: address.address, port: address.port, url: `http://${host}:${address.port}/v1/traces` });
      });
    });
  }

  /**
   * Stops accepting connections and waits for the open ones to finish, but at most about a second:
   * after that, connections still open (a slow or stuck sender) are destroyed, so shutdown never
   * depends on a client.
   */
  close(): Promise<void> {
    return new Promise((resolve) => {
      const deadline = setTimeout(() => {
        debug('OTLP receiver: closing %s', 'connections still open after the close deadline');
        this.#server.closeAllConnections();
      }, CLOSE_DEADLINE_MS);
      deadline.unref();
      this.#server.close(() => {
        clearTimeout(deadline);
        resolve();
      });
      this.#server.closeIdleConnections();
    });
  }

  stats(): OtlpReceiverStats {
    return { ...this.#stats, rejected: { ...this.#stats.rejected } };
  }

  /** `close`: the connection goes once the answer is sent; otherwise it stays open for the next request. */
  #reject(res: http.ServerResponse, status: number, message: string, close = false): void {
    this.#stats.rejected[status] = (this.#stats.rejected[status] ?? 0) + 1;
    debug('OTLP receiver: %d %s', status, message);
    if (res.headersSent) return;
    const body = JSON.stringify({ code: status, message });
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), connection: close ? 'close' : 'keep-alive' });
    res.end(body);
  }

  /**
   * Reads and drops what is left of a refused body. A sender still writing when the socket closes gets
   * a reset, which can reach it before the 413 does, so up to `budget` more bytes are read first; a
   * sender with more than that to say is cut off.
   */
  #drain(req: http.IncomingMessage, budget: number): void {
    let dropped = 0;
    req.on('data', (chunk: Buffer) => {
      dropped += chunk.length;
      if (dropped > budget) req.socket.destroy();
    });
    req.resume();
  }

  #handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    this.#stats.requests += 1;
    const remote = req.socket.remoteAddress ?? '';
    if (!this.#options.allowRemote && !isLoopback(remote)) {
      this.#reject(res, 403, 'only loopback senders are accepted');
      req.resume();
      return;
    }
    const url = req.url?.split('?')[0];
    if (url !== '/v1/traces') {
      this.#reject(res, 404, 'not found: only POST /v1/traces is served');
      req.resume();
      return;
    }
    if (req.method !== 'POST') {
      res.setHeader('allow', 'POST');
      this.#reject(res, 405, 'method not allowed');
      req.resume();
      return;
    }
    const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (type !== 'application/json') {
      this.#reject(res, 415, `unsupported content type ${JSON.stringify(type)}: send OTLP as application/json`);
      req.resume();
      return;
    }
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > this.#options.maxBodyBytes) {
      // Up to twice the limit is read and dropped behind the answer; beyond that the connection closes.
      const drain = declared <= 2 * this.#options.maxBodyBytes;
      this.#reject(res, 413, `body of ${declared} bytes is over the limit of ${this.#options.maxBodyBytes}`, !drain);
      if (drain) this.#drain(req, declared);
      else req.resume();
      return;
    }
    const encoding = (req.headers['content-encoding'] ?? 'identity').toLowerCase();
    let source: NodeJS.ReadableStream = req;
    if (encoding === 'gzip') source = req.pipe(createGunzip());
    else if (encoding === 'deflate') source = req.pipe(createInflate());
    else if (encoding !== 'identity') {
      this.#reject(res, 415, `unsupported content encoding ${encoding}`);
      req.resume();
      return;
    }

    this.#stats.inFlight += 1;
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      this.#stats.inFlight -= 1;
    };
    res.on('close', finish);
    const chunks: Buffer[] = [];
    let size = 0;
    source.on('data', (chunk: Buffer) => {
      if (done) return;
      size += chunk.length;
      if (size > this.#options.maxBodyBytes) {
        this.#reject(res, 413, `body is over the limit of ${this.#options.maxBodyBytes} bytes`);
        finish();
        // No more decoding; the rest of the body is read and dropped, within a limit.
        req.unpipe();
        this.#drain(req, this.#options.maxBodyBytes);
        return;
      }
      chunks.push(chunk);
    });
    source.on('error', (error: Error) => {
      if (done) return;
      this.#reject(res, 400, `unreadable body: ${error.message}`);
      finish();
    });
    source.on('end', () => {
      if (done) return;
      this.#accept(res, Buffer.concat(chunks));
      finish();
    });
  }

  #accept(res: http.ServerResponse, body: Buffer): void {
    let spans: SpanRecord[];
    try {
      spans = fromOtlpJson(body.toString('utf8'));
    } catch (error) {
      const message = error instanceof OtlpDecodeError || error instanceof SyntaxError ? error.message : String(error);
      this.#reject(res, 400, `not an OTLP JSON trace export: ${message}`);
      return;
    }
    this.#stats.accepted += 1;
    this.#stats.spans += spans.length;
    this.#stats.lastRequestAt = Date.now();
    try {
      this.#options.onSpans(spans);
    } catch (error) {
      debug('OTLP receiver: span handler threw: %o', error);
    }
    // An empty partialSuccess is OTLP's "all accepted".
    const answer = '{"partialSuccess":{}}';
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(answer) });
    res.end(answer);
  }
}

function isLoopback(address: string): boolean {
  return address.startsWith('127.') || address === '::1' || address.startsWith('::ffff:127.');
}
