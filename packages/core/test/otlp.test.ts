import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { JsonTraceSerializer } from '@opentelemetry/otlp-transformer';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { fromOtlpJson, OtlpDecodeError, OtlpHttpExporter, span, toOtlpJson, type SpanRecord } from '@cyb/core';

async function body(req: IncomingMessage): Promise<string> {
  let data = '';
  for await (const chunk of req) data += chunk;
  return data;
}

function listen(server: Server): Promise<string> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/traces`)));
}

describe('OTLP', () => {
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown): void => void unhandled.push(reason);
  process.on('unhandledRejection', onUnhandled);
  after(() => process.off('unhandledRejection', onUnhandled));

  it('exports finished spans to a receiver, which decodes them back', async () => {
    const received: SpanRecord[] = [];
    let contentType = '';
    const server = createServer(async (req, res) => {
      contentType = req.headers['content-type'] ?? '';
      received.push(...fromOtlpJson(await body(req)));
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
    const url = await listen(server);
    const exporter = new OtlpHttpExporter({ url, intervalMs: 50 }).start();
    await span('exported', { attributes: { n: 7, ok: true, ratio: 0.5, tags: ['a', 'b'] }, code: { module: 'src/m', function: 'f', arity: 2, file: 'src/m.ts', line: 9 } }, async () => {
      await span('child', { kind: 'producer' }, async () => undefined);
    });
    await exporter.shutdown();
    server.close();
    assert.equal(contentType, 'application/json');
    assert.equal(received.length, 2);
    const parent = received.find((s) => s.name === 'exported');
    const child = received.find((s) => s.name === 'child');
    assert.equal(child?.parentSpanId, parent?.spanId);
    assert.equal(child?.kind, 'producer');
    assert.deepEqual(parent?.attributes, { n: 7, ok: true, ratio: 0.5, tags: ['a', 'b'] });
    assert.deepEqual([parent?.module, parent?.function, parent?.arity, parent?.file, parent?.line], ['src/m', 'f', 2, 'src/m.ts', 9]);
    assert.equal(parent?.resource['process.pid'], process.pid);
    assert.equal(exporter.stats().exported, 2);
  });

  it('drops with counts and without unhandled rejections when the endpoint is down', async () => {
    const server = createServer();
    const url = await listen(server);
    await new Promise((resolve) => server.close(resolve)); // nothing listens there any more
    const exporter = new OtlpHttpExporter({ url, retries: 2, maxQueue: 10, maxBatch: 5, intervalMs: 10_000 }).start();
    for (let i = 0; i < 25; i++) span('doomed', {}, () => i);
    await exporter.shutdown();
    const stats = exporter.stats();
    assert.equal(stats.droppedQueueFull + stats.droppedFailed, 25);
    assert.equal(stats.exported, 0);
    assert.ok(stats.retries >= 2);
    assert.equal(unhandled.length, 0);
  });

  it('decodes what the OpenTelemetry SDK serialises', () => {
    const memory = new InMemorySpanExporter();
    const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(memory)] });
    const tracer = provider.getTracer('otel-sdk-test');
    tracer.startActiveSpan('sdk-parent', { kind: SpanKind.SERVER, attributes: { 'http.route': '/x' } }, (parent) => {
      const child = tracer.startSpan('sdk-child', { kind: SpanKind.CONSUMER, attributes: { 'code.function.name': 'handle', 'code.line.number': 42 } });
      child.setStatus({ code: SpanStatusCode.ERROR, message: 'bad' });
      child.end();
      parent.end();
    });
    const finished = memory.getFinishedSpans();
    const bytes = JsonTraceSerializer.serializeRequest(finished);
    assert.ok(bytes);
    const decoded = fromOtlpJson(Buffer.from(bytes));
    assert.equal(decoded.length, 2);
    const sdkParent = finished.find((s) => s.name === 'sdk-parent');
    const parent = decoded.find((s) => s.name === 'sdk-parent');
    const child = decoded.find((s) => s.name === 'sdk-child');
    assert.equal(parent?.traceId, sdkParent?.spanContext().traceId);
    assert.equal(parent?.kind, 'server');
    assert.equal(child?.parentSpanId, parent?.spanId);
    assert.equal(child?.kind, 'consumer');
    assert.equal(child?.function, 'handle');
    assert.equal(child?.line, 42);
    assert.deepEqual(child?.status, { code: 'error', message: 'bad' });
    const durationNs = Number(sdkParent?.duration[0]) * 1e9 + Number(sdkParent?.duration[1]);
    assert.ok(Math.abs((parent?.durationUs ?? -1) - durationNs / 1000) <= 1);
  });

  it('round-trips its own encoding', () => {
    const spans: SpanRecord[] = [];
    const stop = span('rt', { kind: 'client' }, () => spans);
    assert.equal(stop, spans);
    const again = fromOtlpJson(toOtlpJson([]));
    assert.deepEqual(again, []);
  });

  it('rejects what is not OTLP JSON with a typed error', () => {
    for (const bad of ['not json', '[]', '{"resourceSpans": 3}', '{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz","spanId":"00f067aa0ba902b7","name":"x","startTimeUnixNano":"1"}]}]}]}', '{}']) {
      assert.throws(() => fromOtlpJson(bad), OtlpDecodeError, bad);
    }
  });

  it('ignores prototype-polluting attribute keys', () => {
    const doc = {
      resourceSpans: [{ scopeSpans: [{ spans: [{
        traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7', name: 'x', startTimeUnixNano: '1000',
        attributes: [{ key: '__proto__', value: { stringValue: 'polluted' } }, { key: 'ok', value: { stringValue: 'yes' } }],
      }] }] }],
    };
    const [s] = fromOtlpJson(JSON.stringify(doc));
    assert.deepEqual(s?.attributes, { ok: 'yes' });
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  });
});
