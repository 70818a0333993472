import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import {
  FIXTURES, assertArcheology, edgeIds, fnId, readJson, runCyb, tempDir,
} from './helpers.js';
import type { ArcheologyResults } from '../src/index.js';

async function analyze(fixture: string): Promise<ArcheologyResults> {
  const out = path.join(tempDir(), 'archeology-results.json');
  const result = await runCyb(['static', path.join(FIXTURES, fixture), '-o', out]);
  assert.equal(result.code, 0, result.stderr);
  const doc = readJson<ArcheologyResults>(out);
  assertArcheology(doc);
  return doc;
}

describe('cyb static', () => {
  describe('on the orders service (JavaScript: Express -> amqplib -> dispatch by operation)', () => {
    let results: ArcheologyResults;
    before(async () => {
      results = await analyze('orders');
    });

    it('finds the HTTP route and the amqplib consumer as entry points, with the shared key', () => {
      const entries = results.entry_points.map((e) => ({ id: e.id, type: e.type, fn: fnId(e), file: e.file, line: e.line, metadata: e.metadata }));
      assert.deepEqual(entries, [
        { id: 'http_0', type: 'http', fn: 'src/gateway:createOrder/2', file: 'src/gateway.js', line: 13, metadata: { method: 'POST', route: '/orders', framework: 'express' } },
        { id: 'amqp_0', type: 'amqp', fn: 'src/worker:handleDelivery/1', file: 'src/worker.js', line: 13, metadata: { queue: "process.env.ORDERS_QUEUE ?? 'orders.worker'" } },
      ]);
      assert.equal(results.summary.entry_point_count, 2);
      assert.equal(results.summary.trace_count, 2);
    });

    it('resolves plain calls, imports across files and method calls on known classes', () => {
      const edges = edgeIds(results.edges);
      for (const expected of [
        'src/gateway:createOrder/2 -> src/orders:validateOrder/1',
        'src/gateway:createOrder/2 -> src/publisher:OrderPublisher.publish/1',
        'src/gateway:main/0 -> src/publisher:OrderPublisher.constructor/2',
        'src/handlers:reserveStock/1 -> src/inventory:Inventory.reserve/2',
        'src/handlers:cancelOrder/1 -> src/inventory:Inventory.release/2',
        'src/inventory:Inventory.reserve/2 -> src/inventory:Inventory.available/1',
        'src/publisher:OrderPublisher.publish/1 -> src/orders:encodeOrder/1',
        'src/worker:handleDelivery/1 -> src/orders:parseOrder/1',
      ]) {
        assert.ok(edges.includes(expected), `missing ${expected} in\n${edges.join('\n')}`);
      }
    });

    it('does not follow the handlers[order.operation] lookup', () => {
      const fromWorker = results.edges.filter((e) => e.from.module === 'src/worker').map((e) => fnId(e.to));
      assert.deepEqual(fromWorker, ['src/orders:parseOrder/1']);
      const reachable = new Set(results.traces.flatMap((t) => t.functions.map(fnId)));
      assert.ok(!reachable.has('src/handlers:reserveStock/1'));
      assert.ok(!reachable.has('src/handlers:cancelOrder/1'));
    });

    it('lists what each entry point reaches, entry first, with the longest chain as depth', () => {
      const http = results.traces.find((t) => t.entry_point_id === 'http_0')!;
      assert.deepEqual(http.functions.map(fnId), [
        'src/gateway:createOrder/2', 'src/orders:validateOrder/1', 'src/publisher:OrderPublisher.publish/1',
        'src/orders:normalizeSku/1', 'src/orders:encodeOrder/1',
      ]);
      assert.equal(http.depth, 3);
      const publish = http.functions.find((f) => f.function === 'OrderPublisher.publish')!;
      assert.deepEqual([publish.file, publish.line, publish.type], ['src/publisher.js', 14, 'public']);
      // src/orders is reached from both entry points.
      assert.equal(results.summary.shared_module_count, 1);
    });
  });

  describe('on a TypeScript project with every kind of entry point', () => {
    let results: ArcheologyResults;
    before(async () => {
      results = await analyze('entrypoints');
    });

    it('finds Koa routes, kafkajs and ioredis consumers, commander commands, an argv main and a timer', () => {
      const found = results.entry_points.map((e) => `${e.type} ${fnId(e)}`).sort();
      assert.deepEqual(found, [
        'cli src/cli:<anonymous>/1',
        'cli src/cli:main/1',
        'cli src/cli:refreshAll/0',
        'http src/app:<anonymous>/1',
        'http src/app:getPrice/1',
        'http src/app:health/2',
        'kafka src/workers:eachBatch/1',
        'kafka src/workers:onOrderEvent/1',
        'redis src/workers:<anonymous>/2',
        'redis src/workers:onPatternMessage/3',
        'timer src/cli:<anonymous>/0',
      ]);
      const route = results.entry_points.find((e) => e.function === 'getPrice')!;
      assert.deepEqual(route.metadata, { method: 'GET', route: '/prices/:sku', framework: 'koa' });
      const named = results.entry_points.find((e) => e.type === 'http' && e.function === '<anonymous>')!;
      assert.deepEqual(named.metadata, { method: 'POST', route: '/quotes', framework: 'koa' });
      const kafka = results.entry_points.find((e) => e.function === 'onOrderEvent')!;
      assert.deepEqual(kafka.metadata, { handler: 'eachMessage', topics: ['orders.events'] });
      const redis = results.entry_points.find((e) => e.function === 'onPatternMessage')!;
      assert.deepEqual(redis.metadata, { event: 'pmessage', channels: ['prices.changed'] });
      const command = results.entry_points.find((e) => e.type === 'cli' && e.function === '<anonymous>')!;
      assert.deepEqual(command.metadata, { command: 'quote' });
    });

    it('resolves re-exports, super calls, private methods and default parameters', () => {
      const edges = edgeIds(results.edges);
      for (const expected of [
        'src/app:getPrice/1 -> src/services/PriceService:PriceService.quote/1',
        'src/app:<anonymous>/1 -> src/services/PriceService:DiscountPriceService.quote/1',
        'src/services/PriceService:DiscountPriceService.quote/1 -> src/services/PriceService:PriceService.quote/1',
        'src/services/PriceService:PriceService.quote/1 -> src/services/PriceService:PriceService.listPrice/1',
        'src/services/PriceService:PriceService.quote/1 -> src/services/tax:applyTax/1',
        'src/services/tax:applyTax/1 -> src/services/tax:roundCents/1',
        'src/workers:onOrderEvent/1 -> src/services/audit:recordEvent/2',
        'src/cli:main/1 -> src/cli:buildProgram/0',
        'src/cli:<anonymous>/0 -> src/cli:refreshAll/0',
      ]) {
        assert.ok(edges.includes(expected), `missing ${expected} in\n${edges.join('\n')}`);
      }
      const listPrice = results.traces.flatMap((t) => t.functions).find((f) => f.function === 'PriceService.listPrice')!;
      assert.equal(listPrice.type, 'private');
    });

    it('does not follow sinks[kind], called directly or through a variable', () => {
      assert.deepEqual(results.edges.filter((e) => e.from.function === 'recordEvent'), []);
      assert.equal(results.summary.orphan_function_count, 4); // logKafka, logRedis, startKafka, startRedis
    });
  });

  describe('usage', () => {
    it('exits 2 with one line when the directory is missing or not given', async () => {
      const missing = await runCyb(['static', path.join(FIXTURES, 'no-such-dir')]);
      assert.equal(missing.code, 2);
      assert.match(missing.stderr, /^cyb: static: .*no-such-dir is not a directory\n$/);
      const none = await runCyb(['static']);
      assert.equal(none.code, 2);
      assert.equal(none.stderr.trim().split('\n').length, 1, none.stderr);
      assert.match(none.stderr, /missing required argument 'dir'/);
    });
  });
});
