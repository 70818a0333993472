import { attach, detach, propagationFormats, type PropagationFormat } from '@cyb/core';
import { outgoing } from './internal/activity.js';
import type { ClientConfig } from './internal/client.js';
import { compilePathTest, type PathMatcher } from './internal/options.js';
import { hasRequestCreatedChannel, NODE_CREATED_CHANNEL, NODE_END_CHANNELS, nodeClientTracer, patchNodeClients } from './internal/node-client.js';
import { UNDICI_CHANNELS, undiciHandler } from './internal/undici.js';

/** Options of `traceOutgoing()`, checked once when it starts. */
export interface TraceOutgoingOptions {
  /** Formats written into outgoing requests. Default: `configure()`'s (`['w3c', 'b3']`). */
  formats?: readonly PropagationFormat[];
  /**
   * Replace trace headers the caller set on a request. Default false: a request that already carries
   * `traceparent`, `b3` or `X-B3-TraceId` gets none of ours (it still gets a CLIENT span), and no header
   * the caller set is ever changed.
   */
  overwrite?: boolean;
  /** Requests left alone, tested on `scheme://host[:port]/path` (no query): exact strings, patterns, predicates. */
  ignore?: PathMatcher | readonly PathMatcher[];
  /** Trace requests made outside any active span too, each as a new trace. Default false. */
  rootSpans?: boolean;
  /** Trace global `fetch` and undici (diagnostics channels). Default true. */
  fetch?: boolean;
  /** Trace `node:http` and `node:https` clients. Default true. */
  http?: boolean;
}

const FETCH_ID = 'cyb:http:fetch';
const NODE_ID = 'cyb:http:node-client';
let running = false;

/**
 * Makes outgoing HTTP requests made inside a traced context carry `traceparent`, `tracestate` and `b3`
 * and get a CLIENT span, child of the active span: global `fetch`/undici through undici's diagnostics
 * channels, `node:http`/`node:https` through Node's channels (on Node 20, where no channel fires before
 * the headers are written, `http.request`/`http.get` are wrapped). Headers the caller set are kept.
 * Start it once, early; it returns the function that stops it.
 *
 * @example
 * import { traceOutgoing } from '@cyb/http';
 * const stop = traceOutgoing({ ignore: [/\/v1\/traces$/] });
 * // ... inside a request handler:
 * await fetch('http://inventory/items'); // carries traceparent, tracestate, b3
 * stop();
 */
export function traceOutgoing(options: TraceOutgoingOptions = {}): () => void {
  if (options === null || typeof options !== 'object') throw new TypeError('traceOutgoing options must be an object');
  if (running) throw new Error('traceOutgoing() is already running; call the function it returned to stop it first');
  const config: ClientConfig = {
    injectFormats: options.formats === undefined ? undefined : propagationFormats(options.formats, 'formats'),
    overwrite: options.overwrite === true,
    ignore: compilePathTest(options.ignore, 'ignore'),
    rootSpans: options.rootSpans === true,
  };
  const undo: (() => void)[] = [];
  try {
    if (options.fetch !== false) {
      attach(FETCH_ID, UNDICI_CHANNELS, undiciHandler(config));
      undo.push(() => detach(FETCH_ID));
    }
    if (options.http !== false) {
      const tracer = nodeClientTracer(config);
      if (hasRequestCreatedChannel()) {
        attach(NODE_ID, [NODE_CREATED_CHANNEL, ...NODE_END_CHANNELS], tracer.onChannel);
      } else {
        attach(NODE_ID, NODE_END_CHANNELS, tracer.onChannel);
        undo.push(patchNodeClients(tracer.onRequest));
      }
      undo.push(() => detach(NODE_ID));
    }
  } catch (err) {
    for (const fn of undo.reverse()) fn();
    throw err;
  }
  running = true;
  outgoing.running = true;
  let stopped = false;
  return function stopTraceOutgoing(): void {
    if (stopped) return;
    stopped = true;
    running = false;
    outgoing.running = false;
    for (const fn of undo.reverse()) fn();
  };
}
