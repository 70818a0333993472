import type { GenerationRequest } from './request.js';

/**
 * System 3*, audit: checks S3 runs on its own dispatch table, by a kind chosen at run time from the
 * request. A static call graph sees `audits.dispatch(...)` and nothing behind it.
 */

/** An occasional deep look: flags drafts that lost words on the way. */
export function sporadicAudit(request: GenerationRequest): { kind: string; ok: boolean } {
  const words = request.draft?.split(' ').length ?? 0;
  return { kind: 'sporadic', ok: words <= (request.tokens ?? words) };
}

/** A constant light check: the request stays within its model's budget. */
export function continuousAudit(request: GenerationRequest): { kind: string; ok: boolean } {
  return { kind: 'continuous', ok: (request.tokens ?? 0) <= request.maxTokens };
}
