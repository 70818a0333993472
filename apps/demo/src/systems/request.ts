import type { Bridge } from '@cyb/vsm';

/** What travels from the gateway through S1-S5: one generation request, enriched on the way. */
export interface GenerationRequest {
  requestId: string;
  prompt: string;
  model: string;
  /** The model's budget, from the model service. */
  maxTokens: number;
  /** Set by S1. */
  tokens?: number;
  draft?: string;
  /** Set by S2. */
  slot?: number;
}

/** Keys of the VSM state the systems share through the bridge (under the namespace's prefix). */
export const STATE_KEYS = {
  s1Load: 's1.load',
  s2Schedule: 's2.schedule',
  s3Budget: 's3.budget',
  s5Policy: 's5.policy',
} as const;

/** The policy S5 sets: the moderation service and S3 read it. */
export interface PolicyRules {
  revision: number;
  maxTokens: number;
  blocked: string[];
}

export const DEFAULT_POLICY: PolicyRules = { revision: 0, maxTokens: 512, blocked: ['forbidden'] };

/** What every system handler may use. */
export interface SystemDeps {
  bridge: Bridge;
}

/** S3 refuses work beyond the budget; thrown from a handler, so the message is dead-lettered. */
export class BudgetExceededError extends Error {
  override readonly name = 'BudgetExceededError';
  constructor(readonly tokens: number, readonly budget: number) {
    super(`${tokens} tokens exceed the budget of ${budget}`);
  }
}

export function countTokens(text: string): number {
  return text.split(/\s+/).filter((w) => w !== '').length;
}

/** A stable small hash, so the same request always lands on the same slot. */
export function slotOf(requestId: string, slots: number): number {
  let h = 0;
  for (let i = 0; i < requestId.length; i++) h = (h * 31 + requestId.charCodeAt(i)) >>> 0;
  return h % slots;
}
