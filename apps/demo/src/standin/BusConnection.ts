import { EventEmitter } from 'node:events';
import { connect, type Socket } from 'node:net';
import { readMessages, standinAddress, writeMessage, type WireMessage } from './wire.js';

/** One client connection to the launcher's stand-in bus: requests with replies, and pushed messages. */
export class BusConnection extends EventEmitter {
  readonly #socket: Socket;
  readonly #pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>();
  readonly ready: Promise<void>;
  #nextId = 1;
  #closed = false;

  constructor(url: string) {
    super();
    const { host, port } = standinAddress(url);
    this.#socket = connect({ host, port });
    this.#socket.setNoDelay(true);
    this.ready = new Promise((resolve, reject) => {
      this.#socket.once('connect', () => resolve());
      this.#socket.once('error', reject);
    });
    // Callers that never await `ready` must not see an unhandled rejection; they fail on their requests.
    this.ready.catch(() => undefined);
    this.#socket.on('error', (error) => this.#fail(error));
    this.#socket.on('close', () => this.#fail(new Error('stand-in bus connection closed')));
    readMessages(this.#socket, (message) => this.#receive(message));
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Sends a request and resolves with the bus's result. */
  request<T = unknown>(op: string, body: WireMessage = {}): Promise<T> {
    if (this.#closed) return Promise.reject(new Error('stand-in bus connection closed'));
    const id = this.#nextId++;
    return new Promise<T>((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (value: unknown) => void, reject });
      writeMessage(this.#socket, { ...body, op, id });
    });
  }

  /** Sends without waiting for an answer (a publish, an ack): order on the socket is kept. */
  send(op: string, body: WireMessage = {}): void {
    if (!this.#closed) writeMessage(this.#socket, { ...body, op });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    await new Promise<void>((resolve) => {
      this.#socket.end(() => resolve());
      this.#socket.once('close', () => resolve());
    });
    this.#fail(new Error('stand-in bus connection closed'));
  }

  #receive(message: WireMessage): void {
    if (typeof message.id === 'number') {
      const waiter = this.#pending.get(message.id);
      if (!waiter) return;
      this.#pending.delete(message.id);
      if (typeof message.error === 'string') waiter.reject(new Error(message.error));
      else waiter.resolve(message.result);
      return;
    }
    this.emit('push', message);
  }

  #fail(error: Error): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const waiter of this.#pending.values()) waiter.reject(error);
    this.#pending.clear();
    this.emit('close');
  }
}
