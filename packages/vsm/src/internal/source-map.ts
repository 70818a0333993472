import { readFileSync } from 'node:fs';
import { SourceMap, findSourceMap } from 'node:module';
import { dirname, isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { debug } from './debug.js';

/** A position in a source file: absolute path, 0-based line and column. */
export interface SourcePosition {
  path: string;
  line: number;
  column: number;
}

interface LoadedMap {
  map: SourceMap;
  /** Directory the map's relative `sources` are resolved against. */
  base: string;
  sourceRoot: string;
}

const maps = new Map<string, LoadedMap | null>();

/** A script url from V8 (`file:///...` or a plain path) as a path, or undefined for `node:`, eval, etc. */
export function urlToPath(url: string): string | undefined {
  try {
    if (url.startsWith('file:')) return fileURLToPath(url);
  } catch {
    return undefined;
  }
  return isAbsolute(url) ? url : undefined;
}

function parsePayload(text: string): SourceMap | undefined {
  const payload = JSON.parse(text) as ConstructorParameters<typeof SourceMap>[0];
  if (!payload || typeof payload !== 'object' || !Array.isArray(payload.sources)) return undefined;
  return new SourceMap(payload);
}

function loadMap(path: string): LoadedMap | null {
  const known = maps.get(path);
  if (known !== undefined) return known;
  let loaded: LoadedMap | null = null;
  try {
    // Node keeps the map already when it runs with --enable-source-maps; its sources are then urls.
    const cached = findSourceMap(path);
    if (cached) {
      loaded = { map: cached, base: dirname(path), sourceRoot: '' };
    } else {
      const code = readFileSync(path, 'utf8');
      const ref = /\/\/[#@] sourceMappingURL=(\S+)\s*$/.exec(code)?.[1];
      if (ref !== undefined) {
        let map: SourceMap | undefined;
        let base = dirname(path);
        const inline = /^data:application\/json[^,]*?(;base64)?,(.*)$/.exec(ref);
        if (inline) {
          const data = inline[1] ? Buffer.from(inline[2] ?? '', 'base64').toString('utf8') : decodeURIComponent(inline[2] ?? '');
          map = parsePayload(data);
        } else {
          const mapPath = ref.startsWith('file:') ? fileURLToPath(ref) : resolve(base, decodeURIComponent(ref));
          base = dirname(mapPath);
          map = parsePayload(readFileSync(mapPath, 'utf8'));
        }
        if (map) loaded = { map, base, sourceRoot: (map.payload as { sourceRoot?: string }).sourceRoot ?? '' };
      }
    }
  } catch (err) {
    debug('no usable source map for %s: %o', path, err);
  }
  maps.set(path, loaded);
  return loaded;
}

/**
 * Maps a position in compiled code back to its source through the file's source map (tsc's `.js.map`,
 * an inline map, or the one Node loaded under --enable-source-maps). Without a map, the position is
 * its own source.
 */
export function originalPosition(path: string, line: number, column: number): SourcePosition {
  const loaded = loadMap(path);
  if (loaded === null) return { path, line, column };
  const { map, base, sourceRoot } = loaded;
  let entry = map.findEntry(line, column) as Partial<{
    generatedLine: number;
    originalSource: string;
    originalLine: number;
    originalColumn: number;
  }>;
  // findEntry gives the closest mapping at or before the position, which can sit on an earlier
  // generated line when this one has no mapping before the column; then take this line's last one.
  if (entry.generatedLine !== line) {
    const onLine = map.findEntry(line, Number.MAX_SAFE_INTEGER) as typeof entry;
    if (onLine.generatedLine === line) entry = onLine;
  }
  if (entry.originalSource === undefined || entry.originalLine === undefined) return { path, line, column };
  const source = entry.originalSource;
  let sourcePath: string | undefined;
  if (source.startsWith('file:')) sourcePath = urlToPath(source);
  else if (/^[a-z][a-z0-9+.-]*:/i.test(source) && !isAbsolute(source)) sourcePath = undefined; // webpack://, etc.
  else sourcePath = resolve(base, sourceRoot, source);
  if (sourcePath === undefined) return { path, line, column };
  return { path: sourcePath, line: entry.originalLine, column: entry.originalColumn ?? 0 };
}

/** The text of a source file on disk, or undefined when it cannot be read. */
export function sourceText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}
