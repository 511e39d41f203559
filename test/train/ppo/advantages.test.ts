import { describe, expect, it } from 'vitest';
import { generalizedAdvantages, meanVar, penalizedRewards, whiten } from '../../../src/train/ppo/advantages.js';
import { KlController } from '../../../src/train/ppo/kl-controller.js';
import { PromptOrder } from '../../../src/train/ppo/prompt-order.js';

const offsets = Int32Array.from([0, 3, 4, 9]);
const rewards = [0.1, -0.3, 1.2, 0.7, -0.05, 0.2, 0.0, -0.4, 2.1];
const values = [0.5, 0.2, -0.1, 0.3, 0.9, -0.6, 0.4, 0.05, 1.0];

/** GAE written as its definition: A_t = sum_l (gamma lam)^l delta_{t+l}, summed forwards. */
function directGae(r: number[], v: number[], gamma: number, lam: number): number[] {
  const a: number[] = [];
  for (let t = 0; t < r.length; t++) {
    let sum = 0;
    for (let l = 0; t + l < r.length; l++) {
      const next = t + l + 1 < r.length ? v[t + l + 1] : 0;
      sum += (gamma * lam) ** l * (r[t + l] + gamma * next - v[t + l]);
    }
    a.push(sum);
  }
  return a;
}

describe('PPO advantages', () => {
  for (const [gamma, lam] of [[1, 0.95], [0.9, 0.5], [1, 1], [0.99, 0]]) {
    it(`GAE (gamma ${gamma}, lam ${lam}) equals the sum of discounted TD errors, per sequence`, () => {
      const { advantages, returns } = generalizedAdvantages(rewards, values, offsets, gamma, lam);
      for (let s = 0; s < 3; s++) {
        const [a, b] = [offsets[s], offsets[s + 1]];
        const expected = directGae(rewards.slice(a, b), values.slice(a, b), gamma, lam);
        expected.forEach((e, i) => {
          expect(advantages[a + i]).toBeCloseTo(e, 12);
          expect(returns[a + i]).toBeCloseTo(e + values[a + i], 12);
        });
      }
    });
  }

  it('with gamma = lam = 1 the return of the first token is the sequence reward sum', () => {
    const { returns } = generalizedAdvantages(rewards, values, offsets, 1, 1);
    expect(returns[0]).toBeCloseTo(0.1 - 0.3 + 1.2, 12);
    expect(returns[4]).toBeCloseTo(-0.05 + 0.2 + 0 - 0.4 + 2.1, 12);
  });

  it('penalises every token by -beta * (logp - ref) and adds the score on the last token', () => {
    const logps = [-1, -2, -0.5, -3, -1, -1, -2, -0.1, -0.7];
    const refs = [-1.5, -2, -0.4, -2, -1.2, -0.8, -2.5, -0.3, -0.6];
    const scores = [0.9, -0.2, 0.4];
    const r = penalizedRewards(logps, refs, scores, offsets, 0.1);
    for (let t = 0; t < 9; t++) {
      const last = t === 2 || t === 3 || t === 8;
      const score = t === 2 ? 0.9 : t === 3 ? -0.2 : t === 8 ? 0.4 : 0;
      expect(r.kl[t]).toBeCloseTo(logps[t] - refs[t], 12);
      expect(r.rewards[t]).toBeCloseTo(-0.1 * (logps[t] - refs[t]) + (last ? score : 0), 12);
    }
    expect(r.nonScoreRewards[0]).toBeCloseTo(-0.1 * (0.5 + 0 - 0.1), 12);
    expect(() => penalizedRewards(logps, refs, [1, 2], offsets, 0.1)).toThrow(/2 scores for 3 sequences/);
  });

  it('whitens to mean 0 and unbiased variance 1; shiftMean false keeps the mean', () => {
    const w = whiten(rewards);
    const mv = meanVar(w);
    expect(mv.mean).toBeCloseTo(0, 12);
    expect(mv.variance).toBeCloseTo(1, 6);
    const kept = whiten(rewards, false);
    expect(meanVar(kept).mean).toBeCloseTo(meanVar(rewards).mean, 12);
    expect(meanVar(kept).variance).toBeCloseTo(1, 6);
  });
});

describe('adaptive KL controller (Ziegler et al., TRL)', () => {
  it('moves beta towards the target, at most 20% of n/horizon per update', () => {
    const c = new KlController(0.2, 6, 100);
    c.update(12, 10); // error clipped to +0.2
    expect(c.value).toBeCloseTo(0.2 * (1 + 0.2 * 0.1), 12);
    c.update(5, 10); // error 5/6 - 1
    expect(c.value).toBeCloseTo(0.2 * 1.02 * (1 + (5 / 6 - 1) * 0.1), 12);
    const before = c.value;
    c.update(0, 10); // clipped to -0.2
    expect(c.value).toBeCloseTo(before * (1 - 0.02), 12);
  });

  it('keeps beta fixed without a target', () => {
    const c = new KlController(0.05, undefined, 10000);
    c.update(100, 64);
    expect(c.value).toBe(0.05);
  });
});

describe('prompt order', () => {
  it('covers every prompt once per epoch and resumes from its state', () => {
    const a = new PromptOrder(7, 3);
    const first = [...a.next(4), ...a.next(3)];
    expect([...first].sort()).toEqual([0, 1, 2, 3, 4, 5, 6]);
    a.next(2);
    const state = a.state();
    const rest = a.next(9);
    const b = new PromptOrder(7, 3);
    b.restore(state);
    expect(b.next(9)).toEqual(rest);
  });
});
