import path from 'node:path';

/** A path as the user would type it: relative when under the working directory, else absolute. */
export function displayPath(cwd: string, file: string): string {
  const rel = path.relative(cwd, file);
  return rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : file;
}
