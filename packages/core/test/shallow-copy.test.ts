import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { shallowCopy } from '@cyb/core';

describe('shallowCopy()', () => {
  it('copies own enumerable string keys, values shared, and leaves the source as it was', () => {
    const value = Buffer.from('payload');
    const source = { key: 'k1', value, partition: 2, headers: { id: 'a' } };
    const copy = shallowCopy(source);
    assert.notEqual(copy, source);
    assert.deepEqual(copy, source);
    assert.equal(copy.value, value, 'values are shared, not cloned');
    assert.equal(copy.headers, source.headers);
    (copy as Record<string, unknown>).extra = true;
    copy.partition = 5;
    assert.equal('extra' in source, false);
    assert.equal(source.partition, 2);
  });

  it('leaves out inherited, non-enumerable and symbol keys', () => {
    const symbol = Symbol('s');
    const source = Object.create({ inherited: 1 }) as Record<string | symbol, unknown>;
    source.own = 'yes';
    source[symbol] = 'no';
    Object.defineProperty(source, 'hidden', { value: 'no', enumerable: false });
    const copy = shallowCopy(source);
    assert.deepEqual(Object.keys(copy), ['own']);
    assert.equal(Object.getOwnPropertySymbols(copy).length, 0);
    assert.equal(Object.getPrototypeOf(copy), Object.prototype);
  });

  it('an own __proto__ key (as JSON.parse makes it) neither travels nor sets the prototype', () => {
    const source = JSON.parse('{"__proto__": {"polluted": true}, "system": "s1"}') as Record<string, unknown>;
    assert.ok(Object.hasOwn(source, '__proto__'));
    const copy = shallowCopy(source);
    assert.deepEqual(Object.keys(copy), ['system']);
    assert.equal(Object.getPrototypeOf(copy), Object.prototype);
    assert.equal((copy as { polluted?: unknown }).polluted, undefined);
  });

  it('getters on the source are read once, as values', () => {
    let reads = 0;
    const source = {
      get computed() {
        reads++;
        return 'value';
      },
    };
    const copy = shallowCopy(source);
    assert.equal(reads, 1);
    assert.equal(Object.getOwnPropertyDescriptor(copy, 'computed')?.value, 'value');
  });
});
