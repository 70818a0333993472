import { dirname, extname, relative, resolve, sep } from 'node:path';
import { enclosingClass } from './internal/class-scope.js';
import { debug, failures } from './internal/debug.js';
import { projectRoot } from './internal/project-root.js';
import { originalPosition, sourceText, urlToPath } from './internal/source-map.js';
import type { AnyFunction } from './internal/types.js';
import { locateInV8 } from './internal/v8-location.js';

/**
 * A function as the static call graph names it (see formats/README.md): `module` and `file` are paths
 * from the project root, `line` is 1-based. `module`, `file` and `line` are missing when the
 * declaration cannot be found (native code, `eval`, no inspector in this Node build).
 */
export interface FunctionLocation {
  module?: string;
  function: string;
  arity: number;
  file?: string;
  line?: number;
}

/** Options of `locateFunction()`. */
export interface LocateOptions {
  /** Project root the paths are relative to; default: the nearest directory whose package.json has `workspaces`. */
  root?: string;
  /** The class the function is a method of, when the caller knows it; default: read from the source. */
  className?: string;
}

/** @internal One function to locate, with what its registration already tells about it. */
export interface LocateRequest {
  fn: AnyFunction;
  className?: string;
}

function baseName(fn: AnyFunction): string {
  let name = typeof fn.name === 'string' ? fn.name : '';
  while (name.startsWith('bound ')) name = name.slice(6);
  return name === '' ? '<anonymous>' : name;
}

function toPosix(p: string): string {
  return sep === '/' ? p : p.split(sep).join('/');
}

/** @internal Name and arity alone, for a function that is not (or cannot be) located. */
export function unlocated(req: LocateRequest): FunctionLocation {
  const name = baseName(req.fn);
  return { function: req.className ? `${req.className}.${name}` : name, arity: req.fn.length };
}

/** @internal Locates many functions with one inspector pass. */
export function locateAll(requests: readonly LocateRequest[], root?: string): FunctionLocation[] {
  let positions: ReturnType<typeof locateInV8>;
  try {
    positions = locateInV8(requests.map((r) => r.fn));
  } catch (err) {
    debug('locating handlers failed: %o', err);
    positions = requests.map(() => undefined);
  }
  return requests.map((req, i) => {
    const name = baseName(req.fn);
    const arity = req.fn.length;
    const pos = positions[i];
    const scriptPath = pos === undefined ? undefined : urlToPath(pos.url);
    if (pos === undefined || scriptPath === undefined) {
      failures.location++;
      return unlocated(req);
    }
    try {
      const src = originalPosition(scriptPath, pos.line, pos.column);
      let className = req.className;
      if (className === undefined && name !== '<anonymous>') {
        const text = sourceText(src.path);
        if (text !== undefined) className = enclosingClass(src.path, text, src.line, src.column);
      }
      const base = root === undefined ? projectRoot(dirname(src.path)) : resolve(root);
      const file = toPosix(relative(base, src.path));
      const ext = extname(file);
      return {
        module: ext === '' ? file : file.slice(0, -ext.length),
        function: className ? `${className}.${name}` : name,
        arity,
        file,
        line: src.line + 1,
      };
    } catch (err) {
      failures.location++;
      debug('could not map %s: %o', name, err);
      return unlocated(req);
    }
  });
}

/**
 * Where a function is declared, as the shared function key: found through V8's own record of the
 * function (the inspector's `[[FunctionLocation]]`) and mapped back through source maps, so a handler
 * compiled from TypeScript points at its `.ts` line. Costly (an inspector round trip): call it at
 * setup, not per request.
 *
 * @example
 * import { locateFunction } from '@cyb/vsm';
 * import { handleOperation } from './s1-handlers.js';
 * locateFunction(handleOperation);
 * // { module: 'apps/demo/src/vsm/s1-handlers', function: 'handleOperation', arity: 2,
 * //   file: 'apps/demo/src/vsm/s1-handlers.ts', line: 12 }
 */
export function locateFunction(fn: AnyFunction, options: LocateOptions = {}): FunctionLocation {
  if (typeof fn !== 'function') throw new TypeError('locateFunction: fn must be a function');
  return locateAll([{ fn, className: options.className }], options.root)[0] as FunctionLocation;
}
