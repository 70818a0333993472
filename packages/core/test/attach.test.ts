import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { attach, attachStats, detach } from '@cyb/core';

describe('attach()', () => {
  it("receives Node's own http server channel messages", async () => {
    const seen: string[] = [];
    attach('test-http', ['http.server.request.start'], (message, name) => {
      const { request } = message as { request: { url: string } };
      seen.push(`${name} ${request.url}`);
    });
    const server = createServer((_req, res) => res.end('ok'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    await (await fetch(`http://127.0.0.1:${port}/hello`)).text();
    detach('test-http');
    await (await fetch(`http://127.0.0.1:${port}/after`)).text();
    server.close();
    assert.deepEqual(seen, ['http.server.request.start /hello']);
  });

  it('refuses a second attach under one id', () => {
    attach('dup', ['cyb:test:dup'], () => undefined);
    assert.throws(() => attach('dup', ['cyb:test:other'], () => undefined), /already attached/);
    assert.equal(detach('dup'), true);
    assert.equal(detach('dup'), false);
  });

  it('keeps a throwing handler away from the publisher, and counts it', async () => {
    const before = attachStats().handlerErrors;
    attach('thrower', ['http.server.request.start'], () => {
      throw new Error('handler bug');
    });
    const server = createServer((_req, res) => res.end('still fine'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const text = await (await fetch(`http://127.0.0.1:${port}/`)).text();
    detach('thrower');
    server.close();
    assert.equal(text, 'still fine');
    assert.equal(attachStats().handlerErrors, before + 1);
  });
});
