import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { access } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const here = dirname(fileURLToPath(import.meta.url));

// Each package and one export a user reaches for first.
const packages: [string, string][] = [
  ['@cyb/core', 'span'],
  ['@cyb/http', 'traceHttp'],
  ['@cyb/amqp', 'traceChannel'],
  ['@cyb/kafka', 'traceProducer'],
  ['@cyb/redis', 'traceRedis'],
  ['@cyb/vsm', 'createVsm'],
  ['@cyb/cli', 'runCli'],
];

describe('every package, as an application loads it', () => {
  for (const [name, exported] of packages) {
    it(`${name} loads with require() from CommonJS`, async () => {
      const code = `const m = require(${JSON.stringify(name)}); process.stdout.write(typeof m[${JSON.stringify(exported)}]);`;
      const { stdout } = await run(process.execPath, ['--no-warnings', '--input-type=commonjs', '-e', code], { cwd: here });
      assert.equal(stdout, 'function');
    });

    it(`${name} loads with import from an ES module and ships its types`, async () => {
      const code = `const m = await import(${JSON.stringify(name)}); process.stdout.write(typeof m[${JSON.stringify(exported)}]);`;
      const { stdout } = await run(process.execPath, ['--input-type=module', '-e', code], { cwd: here });
      assert.equal(stdout, 'function');
      const entry = createRequire(join(here, 'x.js')).resolve(name);
      await access(entry.replace(/\.js$/, '.d.ts'));
    });
  }
});
