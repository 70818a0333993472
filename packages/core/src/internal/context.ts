import { context, ROOT_CONTEXT, type Context, type ContextManager } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';

let ready = false;

/**
 * Where `@opentelemetry/api` 1.x keeps its global context manager: the registry object under
 * `Symbol.for('opentelemetry.js.api.1')` on `globalThis`, whose `context` property is the
 * registered manager (deleted again by `context.disable()`). Every `context.active()` and
 * `context.with()` looks the registry up on the global object and checks its version; the global
 * object keeps its properties in a dictionary, so that lookup went to V8's runtime each time (about
 * 1,600 instructions, counted with callgrind, per call). Once a probe has shown that the registry's
 * manager is the one the API uses, the registry is read directly. Undefined when the probe failed
 * (another layout, an incompatible version): every call then goes through the API.
 */
let registry: { context?: ContextManager } | undefined;

/**
 * Makes sure the OpenTelemetry API has a context manager. If the application already registered one
 * (an OpenTelemetry SDK), that one is used, so both share the active span.
 */
export function ensureContextManager(): void {
  if (ready) return;
  ready = true;
  const probe = ROOT_CONTEXT.setValue(PROBE_KEY, true);
  const registered = context.with(probe, () => context.active().getValue(PROBE_KEY) === true);
  if (!registered) context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  registry = checkedRegistry();
}

const PROBE_KEY = Symbol.for('cyb.context.probe');

/** The API's registry, if its `context` is the manager the API itself uses now. */
function checkedRegistry(): { context?: ContextManager } | undefined {
  const candidate = (globalThis as Record<symbol, unknown>)[Symbol.for('opentelemetry.js.api.1')];
  if (candidate === null || typeof candidate !== 'object') return undefined;
  const manager = (candidate as { context?: unknown }).context;
  if (manager === null || typeof manager !== 'object') return undefined;
  const probe = ROOT_CONTEXT.setValue(PROBE_KEY, 'registry');
  const same = context.with(probe, () => (manager as ContextManager).active() === probe && context.active() === probe);
  return same ? (candidate as { context?: ContextManager }) : undefined;
}

export function active(): Context {
  if (!ready) ensureContextManager();
  if (registry === undefined) return context.active();
  // The API falls back to a no-op manager, whose active context is the root, once none is registered.
  const manager = registry.context;
  return manager === undefined ? ROOT_CONTEXT : manager.active();
}

export function runIn<T>(ctx: Context, fn: () => T): T {
  if (!ready) ensureContextManager();
  if (registry === undefined) return context.with(ctx, fn);
  const manager = registry.context;
  return manager === undefined ? fn() : manager.with(ctx, fn);
}
