// The active context is read through @opentelemetry/api's global registry once a probe has shown the
// registry's manager is the API's own. These tests change the global manager, so they run in a file
// (a process) of their own.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { context, createContextKey, ROOT_CONTEXT } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { activeContext, currentSpan, startSpan, contextWithSpan, withContext } from '../src/index.js';

const KEY = createContextKey('cyb.test.context-manager');

describe('the active context and the OpenTelemetry API', () => {
  it('agree inside withContext, across awaits, and with context.with', async () => {
    const ctx = ROOT_CONTEXT.setValue(KEY, 'ours');
    await withContext(ctx, async () => {
      assert.equal(activeContext(), ctx);
      assert.equal(context.active(), ctx);
      await new Promise((r) => setTimeout(r, 1));
      assert.equal(activeContext(), ctx);
      assert.equal(context.active(), ctx);
    });
    const theirs = ROOT_CONTEXT.setValue(KEY, 'theirs');
    context.with(theirs, () => assert.equal(activeContext(), theirs));
    assert.equal(activeContext().getValue(KEY), undefined);
  });

  it('follow the API when its manager is disabled, and when another one is registered', async () => {
    const s = startSpan('outer');
    const ctx = contextWithSpan(s);
    context.disable();
    // Without a manager the API uses a no-op one: the root is always active, and fn still runs.
    assert.equal(withContext(ctx, () => activeContext()), ROOT_CONTEXT);
    assert.equal(withContext(ctx, () => context.active()), ROOT_CONTEXT);
    assert.equal(withContext(ctx, () => currentSpan()), undefined);

    const replacement = new AsyncLocalStorageContextManager().enable();
    assert.equal(context.setGlobalContextManager(replacement), true);
    await withContext(ctx, async () => {
      await new Promise((r) => setImmediate(r));
      assert.equal(currentSpan(), s);
      assert.equal(replacement.active(), ctx);
      assert.equal(context.active(), ctx);
    });
    const viaApi = ROOT_CONTEXT.setValue(KEY, 'replacement');
    replacement.with(viaApi, () => assert.equal(activeContext(), viaApi));
    s.end();
  });
});
