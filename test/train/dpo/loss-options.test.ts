/**
 * TRL's newer DPO loss types and options on fixed log-probs, against formulas written here from
 * the papers / TRL's dpo_loss, and float64 gradchecks of each.
 */
import { describe, expect, it } from 'vitest';
import { Graph, type Tensor } from '../../../src/engine/graph.js';
import { gradcheck } from '../../../src/engine/gradcheck.js';
import { CompiledGraph } from '../../../src/engine/runtime.js';
import { pairLoss, preferenceLoss, preferenceLossPerRow, sortBatch, type CombinedLossOptions, type LossOptions, type SequenceLogps } from '../../../src/train/dpo/losses.js';

const ls = (x: number): number => -Math.log1p(Math.exp(-x));
const softplus = (x: number): number => Math.log1p(Math.exp(x));
const B = 5;
const pol = [[-12.5, -30.1, -4.2, -18, -9.9], [-14, -28.7, -6.6, -17.2, -15]];
const ref = [[-13, -29, -5.5, -18.4, -11], [-13.1, -29.9, -5.1, -17, -12.2]];
const len = [[7, 21, 3, 12, 9], [9, 18, 4, 12, 14]];
const weights = [0.9, 0.3, 1, 0.55, 0.7];
const rc = pol[0].map((p, i) => p - ref[0][i]);
const rr = pol[1].map((p, i) => p - ref[1][i]);
const sorted = (a: number[]): number[] => [...a].sort((x, y) => x - y);
const smoothed = (z: number, eps: number): number => -(1 - eps) * ls(z) - eps * ls(-z);

async function run(build: (lp: SequenceLogps) => Tensor, withWeights = false): Promise<number[]> {
  const g = new Graph();
  const lp: SequenceLogps = {
    policy: g.input('policy', 'float64', [2, 'rows']),
    reference: g.input('reference', 'float64', [2, 'rows']),
    lengths: g.input('lengths', 'float64', [2, 'rows']),
    ...(withWeights ? { rowWeights: g.input('weights', 'float64', ['rows']) } : {}),
  };
  const c = await CompiledGraph.compile({ out: build(lp) }, { threads: 1 });
  const r = await c.run({
    policy: { data: Float64Array.from(pol.flat()), dims: [2, B] },
    reference: { data: Float64Array.from(ref.flat()), dims: [2, B] },
    lengths: { data: Float64Array.from(len.flat()), dims: [2, B] },
    ...(withWeights ? { weights: { data: Float64Array.from(weights), dims: [B] } } : {}),
  });
  await c.release();
  return Array.from(r.out.data as Float64Array);
}

describe('aot, aot_unpaired, discopop', () => {
  it('aot sorts the policy and reference log-odds over the batch', async () => {
    const beta = 0.2;
    const eps = 0.1;
    const got = await run((lp) => pairLoss('aot', lp, { beta, labelSmoothing: eps }));
    const p = sorted(pol[0].map((v, i) => v - pol[1][i]));
    const r = sorted(ref[0].map((v, i) => v - ref[1][i]));
    got.forEach((v, i) => expect(v).toBeCloseTo(smoothed(beta * (p[i] - r[i]), eps), 10));
  });

  it('aot_unpaired sorts chosen and rejected log-ratios separately', async () => {
    const got = await run((lp) => pairLoss('aot_unpaired', lp, { beta: 0.3 }));
    const c = sorted(rc);
    const r = sorted(rr);
    got.forEach((v, i) => expect(v).toBeCloseTo(-ls(0.3 * (c[i] - r[i])), 10));
  });

  it('sortBatch keeps ties apart (a permutation, not a collision)', async () => {
    const g = new Graph();
    const x = g.input('x', 'float64', ['rows']);
    const c = await CompiledGraph.compile({ out: sortBatch(x) }, { threads: 1 });
    const r = await c.run({ x: { data: Float64Array.of(3, -1, 3, 0, -1), dims: [5] } });
    expect(Array.from(r.out.data as Float64Array)).toEqual([-1, -1, 0, 3, 3]);
    await c.release();
  });

  it('discopop blends the logistic and exponential losses by sigmoid(logit / tau)', async () => {
    const beta = 0.5;
    const tau = 0.7;
    const got = await run((lp) => pairLoss('discopop', lp, { beta, discopopTau: tau }));
    got.forEach((v, i) => {
      const z = beta * (rc[i] - rr[i]);
      const mix = 1 / (1 + Math.exp(-z / tau));
      expect(v).toBeCloseTo(-ls(z) * (1 - mix) + Math.exp(-z) * mix, 10);
    });
  });
});

describe('f-divergences (f-DPO)', () => {
  const beta = 0.4;
  const cases: [string, LossOptions, (c: number, r: number) => number][] = [
    ['reverse_kl', { beta, fDivergence: 'reverse_kl' }, (c, r) => c - r],
    ['js_divergence', { beta, fDivergence: 'js_divergence' }, (c, r) => Math.log((2 * Math.exp(c)) / (1 + Math.exp(c))) - Math.log((2 * Math.exp(r)) / (1 + Math.exp(r)))],
    ['forward_kl', { beta, fDivergence: 'forward_kl' }, (c, r) => -Math.exp(-c) + Math.exp(-r)],
    // TRL >= 0.29: f'(u) = (u^(alpha-1) - 1)/(alpha - 1), default alpha 0.5; 1 is reverse KL, 0 forward KL.
    ['alpha_divergence 0.5', { beta, fDivergence: 'alpha_divergence', fAlphaDivergenceCoef: 0.5 }, (c, r) => (Math.exp(-0.5 * c) - Math.exp(-0.5 * r)) / -0.5],
    ['alpha_divergence (default, 0.5)', { beta, fDivergence: 'alpha_divergence' }, (c, r) => (Math.exp(-0.5 * c) - Math.exp(-0.5 * r)) / -0.5],
    ['alpha_divergence 2', { beta, fDivergence: 'alpha_divergence', fAlphaDivergenceCoef: 2 }, (c, r) => Math.exp(c) - Math.exp(r)],
    ['alpha_divergence 1 (reverse KL)', { beta, fDivergence: 'alpha_divergence', fAlphaDivergenceCoef: 1 }, (c, r) => c - r],
    ['alpha_divergence 0 (forward KL)', { beta, fDivergence: 'alpha_divergence', fAlphaDivergenceCoef: 0 }, (c, r) => -Math.exp(-c) + Math.exp(-r)],
  ];
  for (const [name, options, fPrimeDiff] of cases) {
    it(`sigmoid with ${name}: -log sigmoid(beta (f'(u_w) - f'(u_l)))`, async () => {
      const got = await run((lp) => pairLoss('sigmoid', lp, options));
      got.forEach((v, i) => expect(v).toBeCloseTo(-ls(beta * fPrimeDiff(rc[i], rr[i])), 9));
    });
  }

  it("ipo divides each side's f-divergence score by its length (TRL's dpo_trainer)", async () => {
    const o: LossOptions = { beta, fDivergence: 'forward_kl' };
    const got = await run((lp) => pairLoss('ipo', lp, o));
    got.forEach((v, i) => expect(v).toBeCloseTo((-Math.exp(-rc[i]) / len[0][i] + Math.exp(-rr[i]) / len[1][i] - 1 / (2 * beta)) ** 2, 10));
  });

  it('hinge uses the f-divergence logit; bco_pair ignores it (as TRL)', async () => {
    const o: LossOptions = { beta, fDivergence: 'js_divergence' };
    const js = (c: number, r: number): number => c - r - (softplus(c) - softplus(r));
    (await run((lp) => pairLoss('hinge', lp, o))).forEach((v, i) => expect(v).toBeCloseTo(Math.max(0, 1 - beta * js(rc[i], rr[i])), 10));
    const plain = await run((lp) => pairLoss('bco_pair', lp, { beta }));
    (await run((lp) => pairLoss('bco_pair', lp, o))).forEach((v, i) => expect(v).toBe(plain[i]));
  });
});

describe('RPO and WPO weighting', () => {
  const sft = -pol[0].reduce((a, b) => a + b, 0) / len[0].reduce((a, b) => a + b, 0);
  const sig = rc.map((c, i) => -ls(0.1 * (c - rr[i])));
  const mean = (a: number[]): number => a.reduce((x, y) => x + y, 0) / a.length;

  it('rpoAlpha adds alpha x the chosen token-mean NLL', async () => {
    const [got] = await run((lp) => preferenceLoss(lp, { beta: 0.1, lossTypes: ['sigmoid'], rpoAlpha: 0.5 }));
    expect(got).toBeCloseTo(mean(sig) + 0.5 * sft, 10);
  });

  it('row weights scale each row: mean(w_i (loss_i + alpha nll))', async () => {
    const o: CombinedLossOptions = { beta: 0.1, lossTypes: ['sigmoid'], rpoAlpha: 0.5 };
    const [got] = await run((lp) => preferenceLoss(lp, o), true);
    expect(got).toBeCloseTo(mean(sig.map((s, i) => weights[i] * (s + 0.5 * sft))), 10);
    const perRow = await run((lp) => preferenceLossPerRow(lp, o), true);
    perRow.forEach((v, i) => expect(v).toBeCloseTo(weights[i] * (sig[i] + (0.5 * -pol[0][i]) / len[0][i]), 10));
  });
});

describe('float64 gradchecks of the new losses', () => {
  const inputs = [
    { name: 'policy', shape: [2, B], values: pol.flat() },
    { name: 'reference', shape: [2, B], values: ref.flat(), differentiable: false },
    { name: 'lengths', shape: [2, B], values: len.flat(), differentiable: false },
  ];
  const cases: [string, CombinedLossOptions][] = [
    ['aot', { beta: 0.2, lossTypes: ['aot'], labelSmoothing: 0.1 }],
    ['aot_unpaired', { beta: 0.2, lossTypes: ['aot_unpaired'] }],
    ['discopop', { beta: 0.5, lossTypes: ['discopop'], discopopTau: 0.7 }],
    ['sigmoid + js_divergence', { beta: 0.4, lossTypes: ['sigmoid'], fDivergence: 'js_divergence' }],
    ['sigmoid + alpha_divergence', { beta: 0.4, lossTypes: ['sigmoid'], fDivergence: 'alpha_divergence', fAlphaDivergenceCoef: 0.5 }],
    ['ipo + forward_kl', { beta: 0.4, lossTypes: ['ipo'], fDivergence: 'forward_kl' }],
    ['sigmoid + rpo', { beta: 0.1, lossTypes: ['sigmoid'], rpoAlpha: 0.5 }],
  ];
  for (const [name, options] of cases) {
    it(name, async () => {
      const r = await gradcheck(inputs, (x) => preferenceLoss({ policy: x.policy, reference: x.reference, lengths: x.lengths }, options));
      expect(r.checked).toBe(2 * B);
      expect(r.maxRelError, JSON.stringify(r.worst)).toBeLessThan(1e-6);
    });
  }
});
