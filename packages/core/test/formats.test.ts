import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Ajv } from 'ajv';
import { archeologyResultsSchema, Collector, dynamicTracesSchema, extract, span, startSpan, toDynamicTraces, writeDynamicTraces } from '@cyb/core';

const fixtures = new URL('../../test/fixtures/', import.meta.url);
const ajv = new Ajv({ allErrors: true, allowUnionTypes: true });
const validDynamic = ajv.compile(dynamicTracesSchema);
const validArcheology = ajv.compile(archeologyResultsSchema);

function traced(): Collector {
  const c = new Collector().start();
  const server = startSpan('POST /v1/generate', {
    kind: 'server',
    parent: extract({ traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' }) ?? null,
    attributes: { 'http.request.method': 'POST', 'http.route': '/v1/generate' },
  });
  server.end();
  const consumer = startSpan('process vsm.s1', { kind: 'consumer', parent: null, attributes: { 'messaging.system': 'rabbitmq' } });
  consumer.end();
  try {
    span('vsm.s1 explode', { code: { module: 'src/s1', function: 'explode', arity: 1, file: 'src/s1.ts', line: 4 } }, () => {
      throw new Error('kaput');
    });
  } catch {
    // recorded on the span
  }
  c.stop();
  return c;
}

describe('dynamic-traces.json', () => {
  it('validates real collector output against the schema', () => {
    const doc = toDynamicTraces(traced());
    assert.ok(validDynamic(doc), JSON.stringify(validDynamic.errors));
    assert.deepEqual(doc.summary.entry_points_covered, ['amqp', 'function', 'http']);
    assert.equal(doc.summary.total_spans, 3);
    const failed = doc.traces.find((t) => t.entry_point.type === 'function');
    assert.equal(failed?.entry_point.function, 'explode');
    assert.equal(failed?.spans[0]?.status, 'error');
    assert.equal(failed?.spans[0]?.metadata['error.message'], 'kaput');
    assert.equal(failed?.spans[0]?.metadata['process.pid'], process.pid);
    const http = doc.traces.find((t) => t.entry_point.type === 'http');
    assert.equal(http?.spans[0]?.parent_span_id, '00f067aa0ba902b7');
  });

  it('accepts the example files and rejects broken documents', async () => {
    const example = JSON.parse(await readFile(new URL('dynamic-traces.example.json', fixtures), 'utf8'));
    assert.ok(validDynamic(example), JSON.stringify(validDynamic.errors));
    const archeology = JSON.parse(await readFile(new URL('archeology-results.example.json', fixtures), 'utf8'));
    assert.ok(validArcheology(archeology), JSON.stringify(validArcheology.errors));
    assert.equal(validDynamic({ traces: [{ trace_id: 'xyz' }], summary: {} }), false);
    assert.equal(validArcheology({ entry_points: [] }), false);
  });

  it('writes atomically, leaving no temporary file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cyb-formats-'));
    const path = join(dir, 'dynamic-traces.json');
    const written = await writeDynamicTraces(path, traced(), { summary: { note: 'x' } });
    const onDisk = JSON.parse(await readFile(path, 'utf8'));
    assert.deepEqual(onDisk, JSON.parse(JSON.stringify(written)));
    assert.ok(validDynamic(onDisk));
    assert.deepEqual(await readdir(dir), ['dynamic-traces.json']);
  });
});
