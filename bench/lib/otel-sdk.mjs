// The OpenTelemetry side of every transport benchmark, set up the way an SDK setup registers it: a
// BasicTracerProvider with a BatchSpanProcessor, the AsyncLocalStorage context manager and (unless
// told otherwise) W3C + B3 + baggage propagation. The exporter counts and drops, so the cost measured
// is the SDK's, not a network exporter's.
import { context, propagation, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { CompositePropagator, W3CBaggagePropagator, W3CTraceContextPropagator } from '@opentelemetry/core';
import { B3Propagator } from '@opentelemetry/propagator-b3';
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';

/** Registers the SDK globally; returns the provider and a `finish` that flushes and reports the count. */
export function startOtelSdk({ propagators = true } = {}) {
  let exported = 0;
  const exporter = {
    export(spans, done) {
      exported += spans.length;
      done({ code: 0 });
    },
    shutdown: async () => undefined,
    forceFlush: async () => undefined,
  };
  const provider = new BasicTracerProvider({ spanProcessors: [new BatchSpanProcessor(exporter)] });
  trace.setGlobalTracerProvider(provider);
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  if (propagators) {
    propagation.setGlobalPropagator(new CompositePropagator({
      propagators: [new W3CTraceContextPropagator(), new B3Propagator(), new W3CBaggagePropagator()],
    }));
  }
  return {
    provider,
    finish: async () => {
      await provider.forceFlush();
      return { exported };
    },
  };
}
