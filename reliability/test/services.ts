// Throwaway brokers a fault test may stop and start at will: a redis-server on a port of its own, and
// the repository's Kafka test broker (librdkafka's mock cluster). The shared services stay untouched.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { accessSync, constants as fsConstants } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/** A port nothing listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/** A redis-server of our own on `port`, without persistence, started and stopped by the test. */
export class ThrowawayRedis {
  readonly port: number;
  #child: ChildProcess | undefined;

  constructor(port: number) {
    this.port = port;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Starts the server; resolves once it accepts connections. */
  start(): Promise<void> {
    const child = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.#child = child;
    return new Promise((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`redis-server on ${this.port} did not start: ${out}`)), 10_000);
      child.once('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
      child.stdout!.setEncoding('utf8').on('data', (text: string) => {
        out += text;
        if (out.includes('Ready to accept connections')) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`redis-server on ${this.port} exited with ${String(code)}: ${out}`));
      });
    });
  }

  /** Stops the server (SIGTERM: it closes every client connection) and waits for it to exit. */
  async stop(): Promise<void> {
    const child = this.#child;
    if (child === undefined) return;
    this.#child = undefined;
    child.stdout?.destroy();
    child.stderr?.destroy();
    child.kill('SIGTERM');
    await exited(child);
  }
}

const KAFKA_BROKER_BIN = path.join(REPO_ROOT, 'tools', 'kafka-mock', 'build', 'broker');

/** Builds the Kafka test broker when its binary is missing (tools/kafka-mock/build.sh). */
export function ensureKafkaBroker(): void {
  try {
    accessSync(KAFKA_BROKER_BIN, fsConstants.X_OK);
    return;
  } catch {
    // Not built yet.
  }
  const built = spawnSync('bash', [path.join(REPO_ROOT, 'tools', 'kafka-mock', 'build.sh')], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 120_000 });
  if (built.status !== 0) throw new Error(`building the Kafka test broker failed: ${String(built.stderr)}`);
}

/** One mock Kafka cluster of our own, with `topics` (`name:partitions`) created up front. */
export class ThrowawayKafka {
  address = '';
  #child: ChildProcess | undefined;

  /** Starts a broker; resolves with its bootstrap address (a new random port each time). */
  start(topics: readonly string[]): Promise<string> {
    ensureKafkaBroker();
    const child = spawn(KAFKA_BROKER_BIN, [...topics], { stdio: ['ignore', 'pipe', 'ignore'] });
    this.#child = child;
    return new Promise((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error('the Kafka test broker printed no address within 5 s')), 5000);
      child.stdout!.setEncoding('utf8').on('data', (text: string) => {
        out += text;
        const newline = out.indexOf('\n');
        if (newline > 0) {
          clearTimeout(timer);
          this.address = out.slice(0, newline).trim();
          resolve(this.address);
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`the Kafka test broker exited with ${String(code)}`));
      });
    });
  }

  /** SIGTERM, as an operator stopping it would; resolves once it is gone. */
  async stop(): Promise<void> {
    const child = this.#child;
    if (child === undefined) return;
    this.#child = undefined;
    child.stdout?.destroy();
    child.kill('SIGTERM');
    await exited(child);
  }
}
