import { DEFAULT_POLICY, STATE_KEYS, type PolicyRules, type SystemDeps } from './request.js';

/** System 5, policy: sets the rules the rest follows, from what control reports about the budget. */
export class Policy {
  readonly #deps: SystemDeps;

  constructor(deps: SystemDeps) {
    this.#deps = deps;
  }

  /** `s5.policy`: reads S3's budget use and publishes the policy (moderation and S3 read it). */
  async policy(): Promise<PolicyRules> {
    const budget = await this.#deps.bridge.pullState<{ used: number }>(STATE_KEYS.s3Budget);
    const current = await this.#deps.bridge.pullState<PolicyRules>(STATE_KEYS.s5Policy);
    const policy: PolicyRules = {
      ...DEFAULT_POLICY,
      revision: (current?.state.revision ?? 0) + 1,
      // Tighten the budget a little when recent work ran close to it.
      maxTokens: (budget?.state.used ?? 0) > 400 ? 384 : DEFAULT_POLICY.maxTokens,
    };
    await this.#deps.bridge.pushState(STATE_KEYS.s5Policy, policy);
    return policy;
  }

  /** `s5.identity`: what the system is, as policy currently says. */
  async identity(): Promise<{ name: string; policy: PolicyRules }> {
    const current = await this.#deps.bridge.pullState<PolicyRules>(STATE_KEYS.s5Policy);
    return { name: 'cybernetic-trace demo', policy: current?.state ?? DEFAULT_POLICY };
  }
}
