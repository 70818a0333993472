import { readFileSync } from 'node:fs';
import { dirname, join, parse } from 'node:path';

const roots = new Map<string, string | undefined>();

function readManifest(dir: string): { workspaces?: unknown } | undefined {
  try {
    return JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { workspaces?: unknown };
  } catch {
    return undefined;
  }
}

/**
 * The project root for a source directory: the nearest ancestor whose package.json declares
 * `workspaces` (a monorepo root), else the nearest ancestor with any package.json, else the working
 * directory. Paths in the shared function key are relative to it, so both documents agree.
 */
export function projectRoot(dir: string): string {
  if (roots.has(dir)) return roots.get(dir) ?? process.cwd();
  let nearest: string | undefined;
  let found: string | undefined;
  const visited: string[] = [];
  for (let d = dir; ; d = dirname(d)) {
    visited.push(d);
    const manifest = readManifest(d);
    if (manifest !== undefined) {
      nearest ??= d;
      if (manifest.workspaces !== undefined) {
        found = d;
        break;
      }
    }
    if (d === parse(d).root) break;
  }
  const root = found ?? nearest;
  // Every directory walked through shares a workspace root; a fallback holds only for `dir` itself.
  if (found !== undefined) for (const d of visited) roots.set(d, found);
  else roots.set(dir, root);
  return root ?? process.cwd();
}
