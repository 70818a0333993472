import { context, ROOT_CONTEXT, type Context } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';

let ready = false;

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
}

const PROBE_KEY = Symbol.for('cyb.context.probe');

export function active(): Context {
  if (!ready) ensureContextManager();
  return context.active();
}

export function runIn<T>(ctx: Context, fn: () => T): T {
  if (!ready) ensureContextManager();
  return context.with(ctx, fn);
}
