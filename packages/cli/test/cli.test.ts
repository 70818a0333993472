import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { runCyb } from './helpers.js';

describe('cyb', () => {
  it('has --help with an example for every command', async () => {
    for (const command of [[], ['trace'], ['static'], ['diff'], ['report'], ['probe']]) {
      const result = await runCyb([...command, '--help']);
      assert.equal(result.code, 0, `${command.join(' ')}: ${result.stderr}`);
      assert.match(result.stdout, /Usage: cyb/);
      assert.match(result.stdout, /Examples?:\n {2}\$ cyb /, `${command.join(' ') || 'cyb'} --help shows an example`);
    }
  });

  it('answers an unknown command or option with one line and exit 2', async () => {
    const unknown = await runCyb(['trase']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /^cyb: unknown command 'trase'/);
    assert.match(unknown.stderr, /Did you mean trace\?/);
    const option = await runCyb(['static', '.', '--bogus']);
    assert.equal(option.code, 2);
    assert.equal(option.stderr, "cyb: unknown option '--bogus'\n");
  });

  it('prints its version', async () => {
    const result = await runCyb(['--version']);
    assert.equal(result.code, 0);
    assert.match(result.stdout, /^\d+\.\d+\.\d+\n$/);
  });
});
