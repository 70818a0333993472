import type { DispatchContext, Vsm } from '@cyb/vsm';
import { tracedCall } from '../lib/traced.js';
import { BudgetExceededError, DEFAULT_POLICY, STATE_KEYS, type GenerationRequest, type PolicyRules, type SystemDeps } from './request.js';

/** The smaller of the policy's and the model's budget; throws `BudgetExceededError` beyond it. */
export function checkBudget(tokens: number, policy: PolicyRules, request: GenerationRequest): number {
  const budget = Math.min(policy.maxTokens, request.maxTokens);
  if (tokens > budget) throw new BudgetExceededError(tokens, budget);
  return budget;
}

/** System 3, control: holds work to the budget that policy (S5) sets, audits it, passes it on. */
export class Control {
  readonly #deps: SystemDeps;
  readonly #audits: Vsm;

  constructor(deps: SystemDeps, audits: Vsm) {
    this.#deps = deps;
    this.#audits = audits;
  }

  /**
   * `s3.control`: the main path. Throws `BudgetExceededError` for work over budget (the message is
   * then dead-lettered); otherwise audits in-process and hands the work to intelligence (S4).
   */
  async control(request: GenerationRequest, ctx: DispatchContext): Promise<{ budget: number }> {
    const pulled = await this.#deps.bridge.pullState<PolicyRules>(STATE_KEYS.s5Policy);
    const policy = pulled?.state ?? DEFAULT_POLICY;
    const tokens = request.tokens ?? 0;
    const budget = tracedCall(checkBudget, () => checkBudget(tokens, policy, request));
    // The audit kind is data, not code: which function runs is decided here, per request.
    const kind = tokens % 2 === 0 ? 'continuous' : 'sporadic';
    await this.#audits.dispatch('s3*', kind, request);
    await this.#deps.bridge.pushState(STATE_KEYS.s3Budget, { budget, used: tokens, requestId: request.requestId });
    await ctx.send('s4', 'intelligence', request);
    return { budget };
  }

  /** `s3.report`: takes S1's status report and reads S1's recorded load beside it. */
  async report(request: { requestId: string; handled?: number }): Promise<{ handled: number; load: unknown }> {
    const load = await this.#deps.bridge.pullState(STATE_KEYS.s1Load);
    return { handled: request.handled ?? 0, load: load?.state };
  }
}
