import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { consumeStream, type StreamConsumer } from '@cyb/redis';
import { delay, uniquePrefix, waitFor } from './helpers.js';

// A redis-server of the test's own, so it can be restarted without touching the shared one.
async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, 'close');
  return port;
}

async function startServer(port: number): Promise<ChildProcess> {
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no'], { stdio: 'ignore' });
  const failed = once(child, 'error').then(([error]) => { throw error; });
  const probe = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  probe.on('error', () => {});
  try {
    await Promise.race([failed, waitFor('throwaway redis-server to listen', async () => {
      try {
        await probe.connect();
        return (await probe.ping()) === 'PONG';
      } catch {
        probe.disconnect();
        return false;
      }
    }, 10_000)]);
  } finally {
    probe.disconnect();
  }
  return child;
}

async function stopServer(child: ChildProcess | undefined): Promise<void> {
  if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGKILL');
  await exited;
}

describe('consumeStream across a Redis restart', () => {
  let port: number;
  let server: ChildProcess | undefined;
  let client: Redis | undefined;
  let consumer: StreamConsumer | undefined;
  const unhandled: unknown[] = [];
  const consoleError = console.error;

  before(async () => {
    port = await freePort();
    server = await startServer(port);
    // ioredis prints connection errors nobody listens for through console.error.
    console.error = (...args: unknown[]) => {
      if (String(args[0]).includes('Unhandled error event')) unhandled.push(args);
      else consoleError(...args);
    };
  });
  after(async () => {
    console.error = consoleError;
    await consumer?.stop();
    client?.disconnect();
    await stopServer(server);
  });

  it('recreates its group and reads new entries after the group is lost', async () => {
    const key = `${uniquePrefix()}:restart`;
    client = new Redis({ port, host: '127.0.0.1', retryStrategy: () => 50 });
    client.on('error', () => {});
    const handled: string[] = [];
    const errors: string[] = [];
    consumer = consumeStream(client, {
      streams: [key], group: 'cyb-redis-restart', createGroup: true, block: 200,
      handler: (entry) => { handled.push(String(entry.fields.n)); },
      onError: (error) => { errors.push(error instanceof Error ? error.message : String(error)); },
    });
    await consumer.ready;
    await client.xadd(key, '*', 'n', 'before');
    await waitFor('the entry added before the restart', () => handled.includes('before'), 5000);

    await stopServer(server);
    // Long enough for the consumer's connection to fail a few reconnects.
    await delay(300);
    server = await startServer(port);

    await client.xadd(key, '*', 'n', 'after');
    await waitFor('the entry added after the restart', () => handled.includes('after'), 15_000);
    assert.deepEqual(handled, ['before', 'after']);
    assert.ok(errors.some((message) => message.startsWith('NOGROUP')), `NOGROUP reported: ${errors.join(' | ')}`);
    assert.deepEqual(unhandled, []);
  });
});
