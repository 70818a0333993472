// span() start + end + collect against the OpenTelemetry SDK doing the same work, in one process,
// alternating rounds so both see the same machine state.
import { context, propagation, trace, ROOT_CONTEXT, SpanKind } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { CompositePropagator, W3CTraceContextPropagator } from '@opentelemetry/core';
import { B3InjectEncoding, B3Propagator } from '@opentelemetry/propagator-b3';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { Collector, contextWithSpan, extract, inject, span, startSpan, withContext } from '@cyb/core';
import { measure, report } from '../lib/measure.mjs';

context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
const memory = new InMemorySpanExporter();
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(memory)] });
const tracer = provider.getTracer('bench');

const work = () => 1;
let sink = 0;

const collector = new Collector();
const cases = {
  'span() + Collector': () => span('op', { attributes: { 'bench.i': 1 } }, work),
  'OpenTelemetry SDK startActiveSpan + in-memory processor': () =>
    tracer.startActiveSpan('op', { attributes: { 'bench.i': 1 } }, (s) => {
      const r = work();
      s.end();
      return r;
    }),
};

/** Rounds of cases named with `prefix` run with the Collector on; the others empty the SDK's memory after. */
function collectorFor(prefix) {
  return {
    before: (name) => {
      if (name.startsWith(prefix)) collector.start();
    },
    after: (name) => {
      if (name.startsWith(prefix)) {
        collector.stop();
        collector.clear();
      } else memory.reset();
    },
  };
}

const results = await measure(cases, collectorFor('span()'));

// No subscriber: what span() adds to a direct call.
const overhead = await measure({
  'direct call': () => (sink += work()),
  'span() with no subscriber': () => (sink += span('op', undefined, work)),
});

// Propagation: inject + extract of W3C and B3 single through both stacks.
const otelPropagator = new CompositePropagator({
  propagators: [new W3CTraceContextPropagator(), new B3Propagator({ injectEncoding: B3InjectEncoding.SINGLE_HEADER })],
});
const incoming = { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', tracestate: 'a=1,b=2' };
const remote = extract(incoming);
const otelRemote = otelPropagator.extract(ROOT_CONTEXT, incoming, { get: (c, k) => c[k], keys: Object.keys });
const setter = { set: (c, k, v) => (c[k] = v) };
const getter = { get: (c, k) => c[k], keys: Object.keys };
const prop = await measure({
  '@cyb/core inject + extract (validated)': () => {
    const out = {};
    inject(out, { context: remote });
    sink += extract(out) === undefined ? 0 : 1;
  },
  '@opentelemetry/core + propagator-b3 inject + extract': () => {
    const out = {};
    otelPropagator.inject(otelRemote, out, setter);
    sink += trace.getSpanContext(otelPropagator.extract(ROOT_CONTEXT, out, getter)) ? 1 : 0;
  },
});
void propagation;

// One message through a broker, both ends in this process: a PRODUCER span whose context is injected
// into the message headers, then on the consumer side extract, a CONSUMER span child of it, and the
// handler run with that span active. What every transport package does per message, minus the broker.
const messageAttributes = { 'messaging.system': 'rabbitmq', 'messaging.destination.name': 'orders' };
const message = await measure(
  {
    '@cyb/core, one message (Collector)': () => {
      const producer = startSpan('publish orders', { kind: 'producer', parent: null, attributes: messageAttributes });
      const headers = {};
      inject(headers, { context: contextWithSpan(producer) });
      producer.end();
      const parent = extract(headers);
      const consumer = startSpan('process orders', { kind: 'consumer', parent: parent ?? null, attributes: messageAttributes });
      sink += withContext(contextWithSpan(consumer, parent), work);
      consumer.end();
    },
    'OpenTelemetry SDK, one message (in-memory processor)': () => {
      const producer = tracer.startSpan('publish orders', { kind: SpanKind.PRODUCER, attributes: messageAttributes }, ROOT_CONTEXT);
      const headers = {};
      otelPropagator.inject(trace.setSpan(ROOT_CONTEXT, producer), headers, setter);
      producer.end();
      const parent = otelPropagator.extract(ROOT_CONTEXT, headers, getter);
      const consumer = tracer.startSpan('process orders', { kind: SpanKind.CONSUMER, attributes: messageAttributes }, parent);
      sink += context.with(trace.setSpan(parent, consumer), work);
      consumer.end();
    },
  },
  collectorFor('@cyb'),
);

report('core', [
  { title: 'span() with the collector vs the OpenTelemetry SDK', results, baseline: 'OpenTelemetry SDK startActiveSpan + in-memory processor' },
  { title: 'span() with no subscriber vs a direct call', results: overhead, baseline: 'direct call', showOverheadNs: true },
  { title: 'propagation, inject + extract', results: prop, baseline: '@opentelemetry/core + propagator-b3 inject + extract' },
  { title: 'one message: PRODUCER span, inject, extract, CONSUMER span active around the handler', results: message, baseline: 'OpenTelemetry SDK, one message (in-memory processor)' },
]);
if (sink === -1) console.log(sink);
