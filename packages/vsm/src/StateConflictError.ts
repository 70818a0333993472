/** The state a push overwrote (or would have), as the store held it. */
export interface StoredStateInfo {
  /** The state, decoded; undefined if the key was empty or its state did not decode. */
  state: unknown;
  /** Who wrote it (`BridgeOptions.writer`). */
  writer: string | undefined;
  /** When it was written, epoch milliseconds. */
  updatedAt: number | undefined;
}

/**
 * A push based on a version that was no longer the current one: someone else wrote in between.
 * With last-writer-wins the push still lands (`overwritten: true`) and this report is how the
 * overwritten state is not lost silently; with `ifConflict: 'reject'` nothing is written.
 */
export interface StateConflict {
  key: string;
  /** The version the pusher had last seen (or was told to expect). */
  baseVersion: number;
  /** The version in the store when the push arrived. */
  currentVersion: number;
  /** The version written, when the push landed. */
  version: number | undefined;
  overwritten: boolean;
  /** What the store held at `currentVersion`. */
  previous: StoredStateInfo;
}

/**
 * Thrown by `pushState(..., { ifConflict: 'reject' })` when the store moved past the pusher's version.
 * Nothing was written; `conflict.previous` holds the newer state to merge with.
 *
 * @example
 * try {
 *   await bridge.pushState('s3/budget', next, { ifConflict: 'reject' });
 * } catch (err) {
 *   if (err instanceof StateConflictError) await retryWith(err.conflict.previous.state);
 * }
 */
export class StateConflictError extends Error {
  readonly code = 'ERR_VSM_STATE_CONFLICT';
  readonly conflict: StateConflict;

  constructor(conflict: StateConflict) {
    super(
      `state "${conflict.key}" is at version ${conflict.currentVersion}, the push was based on version ${conflict.baseVersion}`,
    );
    this.name = 'StateConflictError';
    this.conflict = conflict;
  }
}
