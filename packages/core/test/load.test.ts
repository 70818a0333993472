import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { access } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';

const run = promisify(execFile);
const consumers = fileURLToPath(new URL('../../test/fixtures/consumers/', import.meta.url));

describe('loading the package', () => {
  it('works from a CommonJS application through require()', async () => {
    const { stdout } = await run(process.execPath, ['--no-warnings', 'app.cjs'], { cwd: consumers });
    assert.deepEqual(JSON.parse(stdout), [['from-cjs']]);
  });

  it('works from an ES module application through import', async () => {
    const { stdout } = await run(process.execPath, ['app.mjs'], { cwd: consumers });
    assert.deepEqual(JSON.parse(stdout), [['from-esm']]);
  });

  it('ships its type declarations', async () => {
    await access(fileURLToPath(new URL('../src/index.d.ts', import.meta.url)));
  });
});
