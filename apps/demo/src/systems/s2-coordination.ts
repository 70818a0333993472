import type { DispatchContext } from '@cyb/vsm';
import { slotOf, STATE_KEYS, type GenerationRequest, type SystemDeps } from './request.js';

const SLOTS = 3;

/** System 2, coordination: spreads work over slots so that S1 units do not collide. */
export class Coordinator {
  readonly #deps: SystemDeps;
  readonly #load = new Array<number>(SLOTS).fill(0);

  constructor(deps: SystemDeps) {
    this.#deps = deps;
  }

  /** `s2.coordinate`: assigns a slot, records the schedule, passes the work to control. */
  async coordinate(request: GenerationRequest, ctx: DispatchContext): Promise<{ slot: number }> {
    const slot = slotOf(request.requestId, SLOTS);
    this.#load[slot] = (this.#load[slot] ?? 0) + 1;
    await this.#deps.bridge.pushState(STATE_KEYS.s2Schedule, { load: this.#load });
    await ctx.send('s3', 'control', { ...request, slot });
    return { slot };
  }

  /** `s2.rebalance`: clears the slot counters. */
  async rebalance(): Promise<{ slots: number }> {
    this.#load.fill(0);
    await this.#deps.bridge.pushState(STATE_KEYS.s2Schedule, { load: this.#load });
    return { slots: SLOTS };
  }
}
