import { readdirSync } from 'node:fs';
import path from 'node:path';

const SOURCE_EXTENSIONS = new Set(['.ts', '.tsx', '.mts', '.cts', '.js', '.jsx', '.mjs', '.cjs']);
const DECLARATION_FILE = /\.d\.[cm]?ts$/;
/** Directories that hold build output or third-party code, never the project's own functions. */
const SKIPPED_DIRECTORIES = new Set(['node_modules', 'dist', 'build', 'out', 'coverage', 'bower_components']);

/**
 * Every TypeScript or JavaScript source file under `root`, sorted, as absolute paths.
 * Hidden directories, dependency folders and build output are left out, as are declaration files.
 */
export function collectSourceFiles(root: string, ignore: readonly string[] = []): string[] {
  const skipped = new Set([...SKIPPED_DIRECTORIES, ...ignore]);
  const found: string[] = [];
  const walk = (dir: string): void => {
    const entries = readdirSync(dir, { withFileTypes: true });
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const entry of entries) {
      if (entry.name.startsWith('.')) continue;
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) {
        if (!skipped.has(entry.name)) walk(full);
      } else if (entry.isFile()) {
        if (SOURCE_EXTENSIONS.has(path.extname(entry.name)) && !DECLARATION_FILE.test(entry.name) && !entry.name.endsWith('.min.js')) {
          found.push(full);
        }
      }
    }
  };
  walk(root);
  return found;
}

/** The shared `module` of a file: its path from the project root, POSIX separators, no extension. */
export function moduleOf(root: string, file: string): string {
  const rel = relativeFile(root, file);
  const ext = path.posix.extname(rel);
  return ext ? rel.slice(0, -ext.length) : rel;
}

/** The shared `file` of a file: its path from the project root with POSIX separators. */
export function relativeFile(root: string, file: string): string {
  return path.relative(root, file).split(path.sep).join('/');
}
