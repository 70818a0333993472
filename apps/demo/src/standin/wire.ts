import type { Socket } from 'node:net';

/**
 * The stand-in bus speaks newline-delimited JSON over a loopback socket: requests carry an `id`
 * and get one reply with the same id; deliveries are pushed with a `type` and no id.
 */
export type WireMessage = Record<string, unknown>;

export function writeMessage(socket: Socket, message: WireMessage): void {
  if (!socket.destroyed) socket.write(`${JSON.stringify(message)}\n`);
}

/** Calls `onMessage` for each complete line; a line that is not JSON closes the connection. */
export function readMessages(socket: Socket, onMessage: (message: WireMessage) => void): void {
  let pending = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    pending += chunk;
    let newline = pending.indexOf('\n');
    while (newline !== -1) {
      const line = pending.slice(0, newline);
      pending = pending.slice(newline + 1);
      if (line !== '') {
        let message: WireMessage;
        try {
          message = JSON.parse(line) as WireMessage;
        } catch {
          socket.destroy(new Error('stand-in bus: a line that is not JSON'));
          return;
        }
        onMessage(message);
      }
      newline = pending.indexOf('\n');
    }
  });
}

/** Buffers travel as base64; `null` stays `null`. */
export function encodeBytes(value: Buffer | string | null | undefined): string | null {
  if (value === null || value === undefined) return null;
  return (Buffer.isBuffer(value) ? value : Buffer.from(String(value))).toString('base64');
}

export function decodeBytes(value: unknown): Buffer | null {
  return typeof value === 'string' ? Buffer.from(value, 'base64') : null;
}

/** `host:port` of a `cyb-standin://host:port` URL. */
export function standinAddress(url: string): { host: string; port: number } {
  const parsed = new URL(url);
  return { host: parsed.hostname || '127.0.0.1', port: Number(parsed.port) };
}
