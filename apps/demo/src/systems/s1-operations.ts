import type { DispatchContext } from '@cyb/vsm';
import { tracedCall } from '../lib/traced.js';
import { countTokens, STATE_KEYS, type GenerationRequest, type SystemDeps } from './request.js';

/** The "generation": the prompt's first words, within the budget, reversed. */
export function draftText(prompt: string, maxTokens: number): string {
  return prompt.split(/\s+/).slice(0, maxTokens).reverse().join(' ');
}

/**
 * System 1, operations: does the primary work (drafts the text) and hands it to coordination.
 * Its operations are its methods; the worker picks one by the message's routing key at run time.
 */
export class Operations {
  readonly #deps: SystemDeps;
  #handled = 0;

  constructor(deps: SystemDeps) {
    this.#deps = deps;
  }

  /** `s1.operation`: the main path. Drafts, records S1's load, passes the draft to S2. */
  async operation(request: GenerationRequest, ctx: DispatchContext): Promise<{ tokens: number }> {
    const tokens = countTokens(request.prompt);
    const draft = tracedCall(draftText, () => draftText(request.prompt, request.maxTokens));
    this.#handled++;
    await this.#deps.bridge.pushState(STATE_KEYS.s1Load, { handled: this.#handled, lastRequest: request.requestId, tokens });
    await ctx.send('s2', 'coordinate', { ...request, tokens, draft });
    return { tokens };
  }

  /** `s1.status`: S1 reports upward to control (S3), as operational units do in the VSM. */
  async status(request: GenerationRequest, ctx: DispatchContext): Promise<{ handled: number }> {
    await ctx.send('s3', 'report', { requestId: request.requestId, handled: this.#handled });
    return { handled: this.#handled };
  }
}
