import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';

const run = promisify(execFile);
const core = new URL('../src/index.js', import.meta.url).href;

/**
 * Whether `String.prototype` is in V8's fast mode at the end of `script`, an ES module run in a
 * process of its own (the state is process-wide and only ever set once).
 */
async function fastAfter(script: string): Promise<boolean> {
  const source = `${script}\nprocess.stdout.write(String(%HasFastProperties(String.prototype)));`;
  const { stdout } = await run(process.execPath, ['--allow-natives-syntax', '--input-type=module', '-e', source]);
  return JSON.parse(stdout) as boolean;
}

describe('String.prototype and subclasses of String', () => {
  it('a subclass of String leaves String.prototype in dictionary mode in a process without this package', async () => {
    assert.equal(await fastAfter(''), true);
    assert.equal(await fastAfter('class Verbatim extends String {}'), false);
  });

  it('loading the package after such a subclass puts String.prototype back into fast mode', async () => {
    assert.equal(await fastAfter(`class Verbatim extends String {}\nawait import(${JSON.stringify(core)});`), true);
  });

  it('a subclass made after the package loaded leaves it fast', async () => {
    assert.equal(await fastAfter(`await import(${JSON.stringify(core)});\nclass Verbatim extends String {}\nclass Another extends String {}`), true);
  });

  it('changes nothing a program can see on strings', async () => {
    const script = `class Verbatim extends String { constructor(format, value) { super(value); this.format = format; } }
const before = Object.getOwnPropertyNames(String.prototype).sort().join();
await import(${JSON.stringify(core)});
const after = Object.getOwnPropertyNames(String.prototype).sort().join();
const v = new Verbatim('txt', 'abc');
if (before !== after || v.format !== 'txt' || String(v) !== 'abc' || 'abc'.charCodeAt(1) !== 98) process.exit(3);`;
    assert.equal(await fastAfter(script), true);
  });
});
