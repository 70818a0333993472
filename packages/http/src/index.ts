// @cyb/http: traceHttp() for Express and Koa, and trace propagation on outgoing fetch/http requests.

// Incoming requests
export { traceHttp, traceHttpErrors } from './trace-http.js';
export type { TraceHttpOptions, TraceHttpMiddleware, PathMatcher, SpanNameInfo } from './trace-http.js';

// Outgoing requests
export { traceOutgoing } from './trace-outgoing.js';
export type { TraceOutgoingOptions } from './trace-outgoing.js';

// Counters
export { httpTraceStats } from './http-trace-stats.js';
export type { HttpTraceStats } from './http-trace-stats.js';
