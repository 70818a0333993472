// RSS growth while 1,000,000 spans flow into a Collector with its defaults, against the
// OpenTelemetry SDK with a BatchSpanProcessor whose exporter discards. Run each in its own process
// (node flood.mjs cyb | otel) so one does not inherit the other's heap.
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { Collector, startSpan } from '@cyb/core';

const which = process.argv[2] ?? 'cyb';
const N = Number(process.env.FLOOD_SPANS ?? 1_000_000);
globalThis.gc?.();
const before = process.memoryUsage().rss;
let peak = before;
const t0 = process.hrtime.bigint();
if (which === 'cyb') {
  const collector = new Collector().start();
  for (let i = 0; i < N; i++) {
    startSpan('flood', { parent: null, attributes: { i } }).end();
    if (i % 50_000 === 0) peak = Math.max(peak, process.memoryUsage().rss);
  }
  const s = collector.stats();
  if (s.traces !== 1000 || s.evictedTraces !== N - 1000) throw new Error(`counters off: ${JSON.stringify(s)}`);
} else {
  const exporter = { export: (_spans, done) => done({ code: 0 }), shutdown: async () => {} };
  const provider = new BasicTracerProvider({ spanProcessors: [new BatchSpanProcessor(exporter)] });
  const tracer = provider.getTracer('flood');
  for (let i = 0; i < N; i++) {
    tracer.startSpan('flood', { attributes: { i } }).end();
    if (i % 50_000 === 0) {
      peak = Math.max(peak, process.memoryUsage().rss);
      await new Promise((r) => setImmediate(r));
    }
  }
  await provider.shutdown();
}
const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
peak = Math.max(peak, process.memoryUsage().rss);
process.stdout.write(JSON.stringify({ which, spans: N, rssGrowthMB: (peak - before) / 2 ** 20, seconds }) + '\n');
