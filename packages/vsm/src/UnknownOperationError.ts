/**
 * No handler is registered for the operation a message asked for. Recorded on the dispatch span and
 * thrown to the caller; `consumeVsm` turns it into a dead-letter, nack or reject, so the message that
 * carried it is kept.
 *
 * @example
 * try {
 *   await vsm.dispatch('s1', 'teleport', payload);
 * } catch (err) {
 *   if (err instanceof UnknownOperationError) log(err.system, err.operation);
 * }
 */
export class UnknownOperationError extends Error {
  /** Stable error code, for code that cannot use `instanceof` (another realm, a serialised error). */
  readonly code: string = 'ERR_VSM_UNKNOWN_OPERATION';
  readonly system: string;
  readonly operation: string;

  constructor(system: string, operation: string, message?: string) {
    super(message ?? `no handler for operation "${operation}" of system "${system}"`);
    this.name = 'UnknownOperationError';
    this.system = system;
    this.operation = operation;
  }
}

/**
 * No system of that name is registered. A kind of `UnknownOperationError`, so one `instanceof` check
 * catches both.
 *
 * @example
 * await vsm.dispatch('s9', 'status', {}).catch((err) => err instanceof UnknownSystemError); // true
 */
export class UnknownSystemError extends UnknownOperationError {
  override readonly code: string = 'ERR_VSM_UNKNOWN_SYSTEM';

  constructor(system: string, operation: string) {
    super(system, operation, `no system "${system}" is registered (operation "${operation}")`);
    this.name = 'UnknownSystemError';
  }
}
