import diagnostics_channel from 'node:diagnostics_channel';
import { debug } from './internal/debug.js';

/** Receives each message published on an attached channel, with the channel's name. */
export type ChannelHandler = (message: unknown, channelName: string) => void;

interface Attachment {
  names: readonly string[];
  listener: (message: unknown, name: string | symbol) => void;
}

const attachments = new Map<string, Attachment>();
const counters = { delivered: 0, handlerErrors: 0 };

/**
 * Subscribes `handler` to existing diagnostics channels under one id: Node's `http.server.request.start`,
 * undici's `undici:request:create`, any library's channel. A handler that throws is counted and logged
 * under `NODE_DEBUG=cyb:core`; the publisher never sees the error.
 *
 * @example
 * attach('log-requests', ['http.server.request.start'], (msg) => seen.push(msg));
 * detach('log-requests');
 */
export function attach(id: string, channelNames: readonly string[], handler: ChannelHandler): void {
  if (typeof id !== 'string' || id === '') throw new TypeError('attach: id must be a non-empty string');
  if (!Array.isArray(channelNames) || channelNames.length === 0 || channelNames.some((n) => typeof n !== 'string' || n === '')) {
    throw new TypeError('attach: channelNames must be a non-empty array of channel names');
  }
  if (typeof handler !== 'function') throw new TypeError('attach: handler must be a function');
  if (attachments.has(id)) throw new Error(`attach: a handler is already attached under id ${JSON.stringify(id)}; detach it first`);
  const listener = (message: unknown, name: string | symbol): void => {
    counters.delivered++;
    try {
      handler(message, String(name));
    } catch (err) {
      counters.handlerErrors++;
      debug('handler %s failed on %s: %o', id, String(name), err);
    }
  };
  const names = Object.freeze([...new Set(channelNames)]);
  for (const name of names) diagnostics_channel.subscribe(name, listener);
  attachments.set(id, { names, listener });
}

/** Removes the handler attached under `id`. Returns false when none was. */
export function detach(id: string): boolean {
  const found = attachments.get(id);
  if (!found) return false;
  for (const name of found.names) diagnostics_channel.unsubscribe(name, found.listener);
  attachments.delete(id);
  return true;
}

/** Messages delivered to attached handlers and how many of them threw. */
export function attachStats(): { attached: number; delivered: number; handlerErrors: number } {
  return { attached: attachments.size, ...counters };
}
