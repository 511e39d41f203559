/**
 * Which prompts each rollout uses: epoch after epoch, each epoch a fresh shuffle of all prompts
 * that depends only on (seed, epoch), so the position {epoch, index} is the whole state and a
 * resumed run draws exactly the prompts the interrupted one would have.
 */
import type { BatcherState } from '../../data/batcher.js';
import { deriveSeed, Rng } from '../../data/rng.js';

/** Stream tags of deriveSeed, so the random streams of one run never share a seed. */
export const SEED_STREAMS = { promptOrder: 1, rollout: 2, minibatches: 3, eval: 4 } as const;

export class PromptOrder {
  private position: BatcherState = { epoch: 0, index: 0 };
  private cached: { epoch: number; order: number[] } | undefined;

  constructor(
    private readonly count: number,
    private readonly seed: number,
  ) {}

  private order(epoch: number): number[] {
    if (this.cached?.epoch !== epoch) {
      const order = new Rng(deriveSeed(this.seed, SEED_STREAMS.promptOrder, epoch)).shuffle(Array.from({ length: this.count }, (_, i) => i));
      this.cached = { epoch, order };
    }
    return this.cached.order;
  }

  /** The next `n` prompt indices (continuing into the next epoch when this one runs out). */
  next(n: number): number[] {
    const out: number[] = [];
    while (out.length < n) {
      const order = this.order(this.position.epoch);
      out.push(order[this.position.index]);
      this.position.index++;
      if (this.position.index >= this.count) this.position = { epoch: this.position.epoch + 1, index: 0 };
    }
    return out;
  }

  state(): BatcherState {
    return { ...this.position };
  }

  restore(s: BatcherState): void {
    this.position = { ...s };
  }
}
