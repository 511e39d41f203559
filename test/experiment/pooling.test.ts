/**
 * Pooling frontier points over seeds (95% intervals over seeds and samples), the computed reading
 * of the frontier, and --shard's parsing (i/N, or N with the index from a Kubernetes Indexed Job
 * or a SLURM array task).
 */
import { describe, expect, it } from 'vitest';
import type { FrontierPoint } from '../../src/experiment/frontier.js';
import { poolPoints, pooledInterval, tQuantile975 } from '../../src/experiment/pooling.js';
import { bestAtKl, readFrontier, runCurves } from '../../src/experiment/reading.js';
import { parseShard, shardItems } from '../../src/experiment/shard.js';
import { resolveSettings } from '../../src/experiment/sentiment.js';

const point = (method: string, setting: string, step: number, seed: number, reward: number, kl: number, rewardStderr = 0.02): FrontierPoint => ({
  method, setting, step, seed, reward, rewardStderr, kl, klStderr: 0.1, samples: 100,
});

describe('pooling over seeds', () => {
  it('one seed: the normal interval of its samples', () => {
    const [p] = poolPoints([point('DPO', 'beta=0.1', 10, 0, 0.3, 5)]);
    expect(p.rewardCi[0]).toBeCloseTo(0.3 - 1.96 * 0.02, 12);
    expect(p.rewardCi[1]).toBeCloseTo(0.3 + 1.96 * 0.02, 12);
    expect(p.seeds).toBe(1);
  });

  it("several seeds: Student's t over the seed means, never narrower than the sampling noise", () => {
    const means = [0.2, 0.3, 0.4];
    const r = pooledInterval(means, [0.01, 0.01, 0.01]);
    const sd = Math.sqrt(((0.2 - 0.3) ** 2 + 0 + (0.4 - 0.3) ** 2) / 2);
    expect(r.mean).toBeCloseTo(0.3, 12);
    expect(r.half).toBeCloseTo((tQuantile975(2) * sd) / Math.sqrt(3), 12);
    expect(tQuantile975(2)).toBe(4.303);
    // Seeds that agree by chance: the samples' noise still counts.
    const agree = pooledInterval([0.3, 0.3], [0.05, 0.05]);
    expect(agree.half).toBeCloseTo((1.96 * Math.sqrt(2 * 0.05 ** 2)) / 2, 12);
    const pooled = poolPoints([point('DPO', 'b', 1, 0, 0.2, 4), point('PPO', 't', 1, 0, 0.1, 3), point('DPO', 'b', 1, 1, 0.4, 6)]);
    expect(pooled.map((p) => [p.method, p.seeds])).toEqual([['DPO', 2], ['PPO', 1]]);
    expect(pooled[0].kl).toBeCloseTo(5, 12);
  });
});

describe('the computed reading', () => {
  const settings = { ...resolveSettings({ quick: true }), seeds: 1 };
  const points = [
    point('reference', '', 0, 0, 0.1, 0),
    point('DPO', 'beta=0.1', 20, 0, 0.3, 4),
    point('DPO', 'beta=0.1', 40, 0, 0.4, 8),
    point('PPO', 'target_kl=6', 5, 0, 0.12, 4),
    point('PPO', 'target_kl=6', 10, 0, 0.38, 8),
    point('Best-of-N', 'N=4', 4, 0, 0.11, 0.64),
  ];
  const pooled = poolPoints(points);

  it('interpolates DPO between its checkpoints at another method’s KL', () => {
    const at = bestAtKl(runCurves(pooled, 'DPO'), 6) as NonNullable<ReturnType<typeof bestAtKl>>;
    expect(at.reward).toBeCloseTo(0.35, 12);
    expect(bestAtKl(runCurves(pooled, 'DPO'), 9)).toBeUndefined();
  });

  it('says which method is above which at equal KL, beyond the intervals, and how PPO met its target', () => {
    const trace = [1, 2, 3].map((step) => ({ step, kl: 2 * step, score: 0, klCoef: 0.2 }));
    const reading = readFrontier({ pooled, settings, pooledWinRates: [], runs: [{ method: 'PPO', setting: 'target_kl=6', seed: 0, seconds: 1, trace }] });
    expect(reading[0]).toMatch(/^The reference scores 0\.100 \[0\.061, 0\.139\]/);
    expect(reading.join('\n')).toMatch(/Above the reference beyond both intervals: DPO beta=0\.1 \(best 0\.400 .* at KL 8\.0, step 40\); PPO target_kl=6/);
    expect(reading.join('\n')).toMatch(/Not clearly above the reference at any point: Best-of-N N=4/);
    // PPO at KL 4: 0.12 vs DPO 0.3 (DPO above); at KL 8: 0.38 vs 0.4 (overlap).
    expect(reading.join('\n')).toMatch(/PPO vs DPO at equal KL \(2 of PPO's points within DPO's KL range\): DPO above at 1, intervals overlap at 1; DPO − PPO = \+0\.100/);
    expect(reading.join('\n')).toMatch(/PPO 6: 6\.00 \(\+0%\) — 1 of 1 within ±30%/);
  });
});

describe('--shard', () => {
  it('reads i/N, or N with the index from JOB_COMPLETION_INDEX or SLURM_ARRAY_TASK_ID', () => {
    expect(parseShard('1/4', {})).toEqual({ index: 1, count: 4 });
    expect(parseShard('4', { JOB_COMPLETION_INDEX: '3' })).toEqual({ index: 3, count: 4 });
    expect(parseShard('4', { SLURM_ARRAY_TASK_ID: '6', SLURM_ARRAY_TASK_MIN: '5' })).toEqual({ index: 1, count: 4 });
    expect(() => parseShard('4', {})).toThrow(/no shard index: give --shard i\/4, or run as a Kubernetes Indexed Job/);
    expect(() => parseShard('4/4', {})).toThrow(/index 4 is outside 0\.\.3/);
    expect(() => parseShard('a/2', {})).toThrow(/the shard index i must be a non-negative integer, got 'a'/);
    expect(shardItems([0, 1, 2, 3, 4], { index: 1, count: 2 })).toEqual([1, 3]);
  });
});
