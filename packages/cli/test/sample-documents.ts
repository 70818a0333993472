// Hand-built documents in the shapes of shared/formats, for tests that need exact, known content.
import type { ArcheologyResults, DynamicSpan, DynamicTraces } from '../src/index.js';

const T0 = 1_737_540_000_000_000;

function span(traceId: string, spanId: string, parent: string | null, name: string, kind: string, fn: [string, string, number] | null,
  at: number, duration: number, process: [string, number], metadata: Record<string, unknown> = {}): DynamicSpan {
  return {
    trace_id: traceId, span_id: spanId, parent_span_id: parent, name, kind,
    module: fn?.[0] ?? null, function: fn?.[1] ?? null, arity: fn?.[2] ?? null,
    file: fn ? `${fn[0]}.ts` : null, line: fn ? 10 : null,
    timestamp: T0 + at, duration_us: duration, status: 'unset',
    metadata: { 'service.name': process[0], 'process.pid': process[1], ...metadata },
  };
}

const WEB: [string, number] = ['web', 101];
const GATEWAY: [string, number] = ['gateway', 202];
const WORKER: [string, number] = ['worker', 303];
const hex = (n: number, width: number): string => n.toString(16).padStart(width, '0');

/**
 * Three traces: web -(HTTP)-> gateway -(RabbitMQ)-> worker -(dispatch)-> handler; a gateway-only
 * request; and a worker-only job with a direct call the static graph lacks.
 */
export function sampleDynamicTraces(): DynamicTraces {
  const a = hex(0xa1, 32);
  const b = hex(0xb2, 32);
  const c = hex(0xc3, 32);
  const first = [
    span(a, hex(1, 16), null, 'checkout', 'internal', ['web/src/checkout', 'checkout', 1], 0, 9000, WEB),
    span(a, hex(2, 16), hex(1, 16), 'POST', 'client', null, 100, 8000, WEB, { 'http.request.method': 'POST', 'url.full': 'http://127.0.0.1/orders' }),
    span(a, hex(3, 16), hex(2, 16), 'POST /orders', 'server', ['src/gateway', 'createOrder', 2], 300, 7000, GATEWAY, { 'http.request.method': 'POST', 'http.route': '/orders' }),
    span(a, hex(4, 16), hex(3, 16), 'publish orders', 'producer', null, 500, 400, GATEWAY, { 'messaging.system': 'rabbitmq', 'messaging.destination.name': 'orders', 'messaging.rabbitmq.destination.routing_key': 'orders.reserve' }),
    span(a, hex(5, 16), hex(4, 16), 'process orders', 'consumer', ['src/worker', 'handleDelivery', 1], 2000, 3000, WORKER, { 'messaging.system': 'rabbitmq', 'messaging.destination.name': 'orders.worker' }),
    span(a, hex(6, 16), hex(5, 16), 'orders reserve', 'internal', ['src/handlers', 'reserveStock', 1], 2500, 1000, WORKER, { 'vsm.operation': 'reserve' }),
  ];
  const second = [
    span(b, hex(7, 16), null, 'GET /health', 'server', ['src/gateway', 'health', 2], 20_000, 300, GATEWAY, { 'http.request.method': 'GET', 'http.route': '/health' }),
  ];
  const third = [
    span(c, hex(8, 16), null, 'process orders', 'consumer', ['src/worker', 'handleDelivery', 1], 40_000, 2000, WORKER, { 'messaging.system': 'rabbitmq' }),
    span(c, hex(9, 16), hex(8, 16), 'orders reserve', 'internal', ['src/handlers', 'reserveStock', 1], 40_100, 1500, WORKER, { 'vsm.operation': 'reserve' }),
    span(c, hex(10, 16), hex(9, 16), 'audit', 'internal', ['src/audit', 'record', 1], 40_200, 100, WORKER),
  ];
  const traces = [
    { trace_id: a, entry_point: { type: 'function', module: 'web/src/checkout', function: 'checkout', arity: 1 }, spans: first, span_count: first.length },
    { trace_id: b, entry_point: { type: 'http', module: 'src/gateway', function: 'health', arity: 2 }, spans: second, span_count: second.length },
    { trace_id: c, entry_point: { type: 'amqp', module: 'src/worker', function: 'handleDelivery', arity: 1 }, spans: third, span_count: third.length },
  ];
  return {
    traces,
    summary: { trace_count: 3, total_spans: 10, entry_points_covered: ['amqp', 'function', 'http'], dropped_spans: 0, evicted_traces: 0, sampled_out: 0 },
  };
}

/** The static graph of the same code: it knows reserveStock -> record, nothing across transports or the lookup. */
export function sampleArcheology(): ArcheologyResults {
  const fn = (module: string, name: string, arity: number) => ({ module, function: name, arity });
  return {
    summary: { entry_point_count: 1, trace_count: 1, shared_module_count: 0, orphan_function_count: 2 },
    entry_points: [{ id: 'amqp_0', type: 'amqp', ...fn('src/worker', 'handleDelivery', 1), file: 'src/worker.ts', line: 10, metadata: {} }],
    traces: [{ entry_point_id: 'amqp_0', functions: [{ ...fn('src/worker', 'handleDelivery', 1), file: 'src/worker.ts', line: 10, type: 'public' }], depth: 1, metadata: {} }],
    edges: [
      { from: fn('src/handlers', 'reserveStock', 1), to: fn('src/audit', 'record', 1) },
      { from: fn('src/worker', 'handleDelivery', 1), to: fn('src/worker', 'parse', 1) },
    ],
  };
}
