import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';

const run = promisify(execFile);
const redis = new URL('../src/index.js', import.meta.url).href;
const packageDir = fileURLToPath(new URL('../../', import.meta.url));

/** Whether `String.prototype` is in V8's fast mode after `script`, run as an ES module in a fresh process. */
async function fastAfter(script: string): Promise<boolean> {
  const source = `${script}\nprocess.stdout.write(String(%HasFastProperties(String.prototype)));`;
  const { stdout } = await run(process.execPath, ['--allow-natives-syntax', '--input-type=module', '-e', source], { cwd: packageDir });
  return JSON.parse(stdout) as boolean;
}

// ioredis subclasses String when it loads (RESP3 verbatim strings), which slows every string method
// call in the process; @cyb/core undoes that (see its internal/fast-strings.ts).
describe('ioredis and String.prototype', () => {
  it('ioredis alone leaves String.prototype in dictionary mode', async () => {
    assert.equal(await fastAfter(`await import('ioredis');`), false);
  });

  it('is fast again whether ioredis or @cyb/redis is loaded first', async () => {
    assert.equal(await fastAfter(`await import('ioredis');\nawait import(${JSON.stringify(redis)});`), true);
    assert.equal(await fastAfter(`await import(${JSON.stringify(redis)});\nawait import('ioredis');`), true);
  });
});
