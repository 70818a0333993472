import { createRequire } from 'node:module';
import { debug } from './debug.js';
import type { AnyFunction } from './types.js';

/** A position in a loaded script, as V8 reports it: 0-based line and column. */
export interface ScriptPosition {
  url: string;
  line: number;
  column: number;
}

type Inspector = typeof import('node:inspector');
type Session = InstanceType<Inspector['Session']>;

interface RemoteObject {
  objectId?: string;
  value?: unknown;
}
interface InternalProperty {
  name: string;
  value?: RemoteObject;
}

let session: Session | null | undefined;
// Script ids are never reused within one isolate, so the url found for an id stays valid.
const scriptUrls = new Map<string, string>();
// A global slot the inspector can reach: `Runtime.evaluate` only sees the global scope. It is set and
// cleared within one synchronous call, so no other code can observe it.
const SLOT = '__cybVsmLocate';

function openSession(): Session | null {
  if (session !== undefined) return session;
  try {
    // Loaded on first use: requiring it throws where Node is built without the inspector, and the
    // rest of the package must keep working there.
    const inspector = createRequire(import.meta.url)('node:inspector') as Inspector;
    const s = new inspector.Session();
    s.connect();
    s.on('Debugger.scriptParsed', (message) => {
      const { scriptId, url } = message.params;
      if (url) scriptUrls.set(scriptId, url);
    });
    session = s;
  } catch (err) {
    debug('node:inspector unavailable, handler locations are off: %o', err);
    session = null;
  }
  return session;
}

/**
 * Posts a command and returns its result. The in-thread inspector session answers synchronously
 * (the callback runs before `post` returns); if some runtime ever answers later, this returns
 * undefined instead of blocking.
 */
function post<T>(s: Session, method: string, params?: object): T | undefined {
  let result: T | undefined;
  let failed: Error | null = null;
  (s.post as (m: string, p: object | undefined, cb: (e: Error | null, r: T) => void) => void)(
    method,
    params,
    (err, r) => {
      failed = err;
      result = r;
    },
  );
  if (failed) throw failed;
  return result;
}

function rawLocation(s: Session, fn: AnyFunction): { scriptId: string; line: number; column: number } | undefined {
  const g = globalThis as Record<string, unknown>;
  g[SLOT] = fn;
  try {
    let target: string | undefined;
    const evaluated = post<{ result: RemoteObject }>(s, 'Runtime.evaluate', {
      expression: `globalThis.${SLOT}`,
      objectGroup: SLOT,
      silent: true,
    });
    target = evaluated?.result.objectId;
    // A bound function has no location of its own; its target function does.
    for (let hops = 0; target !== undefined && hops < 8; hops++) {
      const props = post<{ internalProperties?: InternalProperty[] }>(s, 'Runtime.getProperties', {
        objectId: target,
        ownProperties: true,
      });
      const internal = props?.internalProperties ?? [];
      const loc = internal.find((p) => p.name === '[[FunctionLocation]]')?.value?.value as
        | { scriptId: string; lineNumber: number; columnNumber: number }
        | undefined;
      if (loc) return { scriptId: loc.scriptId, line: loc.lineNumber, column: loc.columnNumber };
      target = internal.find((p) => p.name === '[[TargetFunction]]')?.value?.objectId;
    }
    return undefined;
  } finally {
    delete g[SLOT];
    try {
      post(s, 'Runtime.releaseObjectGroup', { objectGroup: SLOT });
    } catch (err) {
      debug('releaseObjectGroup failed: %o', err);
    }
  }
}

/**
 * Where V8 says each function is declared (the position of its parameter list), in one pass.
 * The script urls come from `Debugger.scriptParsed`, which V8 replays for every loaded script when
 * the Debugger domain is enabled; it is enabled only when an unseen script id turns up, and disabled
 * again at once, so the running program does not pay for an attached debugger.
 */
export function locateInV8(fns: readonly AnyFunction[]): (ScriptPosition | undefined)[] {
  const s = openSession();
  if (s === null) return fns.map(() => undefined);
  const raw = fns.map((fn) => {
    try {
      return rawLocation(s, fn);
    } catch (err) {
      debug('inspector could not locate %s: %o', fn.name, err);
      return undefined;
    }
  });
  if (raw.some((r) => r !== undefined && !scriptUrls.has(r.scriptId))) {
    try {
      post(s, 'Debugger.enable');
    } catch (err) {
      debug('Debugger.enable failed: %o', err);
    } finally {
      try {
        post(s, 'Debugger.disable');
      } catch (err) {
        debug('Debugger.disable failed: %o', err);
      }
    }
  }
  return raw.map((r) => {
    if (r === undefined) return undefined;
    const url = scriptUrls.get(r.scriptId);
    return url === undefined ? undefined : { url, line: r.line, column: r.column };
  });
}
