import { describe, expect, it } from 'vitest';
import { Graph } from '../../../src/engine/graph.js';
import { CompiledGraph } from '../../../src/engine/runtime.js';
import { LOSS_TYPES, pairLoss, plackettLuceLoss, preferenceLoss, type LossType } from '../../../src/train/dpo/losses.js';

// Independent scalar formulas, written from ../shared/docs/dpo.md.
const ls = (x: number): number => -Math.log1p(Math.exp(-x));
const sig = (x: number): number => 1 / (1 + Math.exp(-x));
type RowType = Exclude<LossType, 'sft' | 'unlikelihood' | 'aot' | 'aot_unpaired'>;
function reference(type: RowType, rc: number, rr: number, lw: number, ll: number, beta: number, eps: number): number {
  const d = rc - rr;
  switch (type) {
    case 'sigmoid': return -(1 - eps) * ls(beta * d) - eps * ls(-beta * d);
    case 'hinge': return Math.max(0, 1 - beta * d);
    case 'ipo': return (rc / lw - rr / ll - 1 / (2 * beta)) ** 2;
    case 'robust': return (-(1 - eps) * ls(beta * d) + eps * ls(-beta * d)) / (1 - 2 * eps);
    case 'exo_pair': {
      const e = eps || 1e-3;
      return sig(beta * d) * (ls(beta * d) - Math.log(1 - e)) + sig(-beta * d) * (ls(-beta * d) - Math.log(e));
    }
    case 'bco_pair': return -ls(beta * rc) - ls(-beta * rr);
    case 'sppo_hard': return (rc - 1 / (2 * beta)) ** 2 + (rr + 1 / (2 * beta)) ** 2;
    case 'nca_pair': return -ls(beta * rc) - 0.5 * ls(-beta * rc) - 0.5 * ls(-beta * rr);
    case 'apo_zero': return 1 - sig(beta * rc) + sig(beta * rr);
    case 'apo_down': return sig(beta * rc) + 1 - sig(beta * d);
    case 'sigmoid_norm': return -ls(beta * (rc / lw - rr / ll));
    case 'discopop': {
      const z = beta * d;
      const mix = sig(z / 0.05);
      return -ls(z) * (1 - mix) + Math.exp(-z) * mix;
    }
  }
}

const B = 5;
const pol = [[-12.5, -30.1, -4.2, -18, -9.9], [-14, -28.7, -6.6, -17.2, -15]];
const ref = [[-13, -29, -5.5, -18.4, -11], [-13.1, -29.9, -5.1, -17, -12.2]];
const len = [[7, 21, 3, 12, 9], [9, 18, 4, 12, 14]];

type Logps = Parameters<typeof pairLoss>[1];

async function evalGraph(build: (lp: Logps) => ReturnType<typeof pairLoss>, k = 2): Promise<number[]> {
  const g = new Graph();
  const policy = g.input('policy', 'float64', [k, 'rows']);
  const reference_ = g.input('reference', 'float64', [k, 'rows']);
  const lengths = g.input('lengths', 'float64', [k, 'rows']);
  const out = build({ policy, reference: reference_, lengths });
  const c = await CompiledGraph.compile({ out }, { threads: 1 });
  const flat = (a: number[][]): Float64Array => Float64Array.from(a.slice(0, k).flat());
  const r = await c.run({
    policy: { data: flat(pol), dims: [k, B] },
    reference: { data: flat(ref), dims: [k, B] },
    lengths: { data: flat(len), dims: [k, B] },
  });
  return Array.from(r.out.data as Float64Array);
}

describe('DPO loss family', () => {
  // 'unlikelihood' needs per-token sums: test/train/unlikelihood.test.ts.
  // aot and aot_unpaired compare rows across the batch: tested in loss-options.test.ts.
  for (const type of LOSS_TYPES.filter((t): t is RowType => t !== 'sft' && t !== 'unlikelihood' && t !== 'aot' && t !== 'aot_unpaired')) {
    for (const eps of [0, 0.1]) {
      it(`${type} (label smoothing ${eps}) matches its formula`, async () => {
        const beta = 0.3;
        const got = await evalGraph((lp) => pairLoss(type, lp, { beta, labelSmoothing: eps }));
        for (let i = 0; i < B; i++) {
          const rc = pol[0][i] - ref[0][i];
          const rr = pol[1][i] - ref[1][i];
          expect(got[i]).toBeCloseTo(reference(type, rc, rr, len[0][i], len[1][i], beta, eps), 10);
        }
      });
    }
  }

  it('Plackett-Luce at K = 2 equals sigmoid DPO', async () => {
    const a = await evalGraph((lp) => plackettLuceLoss(lp, { beta: 0.1 }));
    const b = await evalGraph((lp) => pairLoss('sigmoid', lp, { beta: 0.1 }));
    a.forEach((v, i) => expect(v).toBeCloseTo(b[i], 12));
  });

  it('Plackett-Luce for K = 3 matches the ranking likelihood', async () => {
    const pol3 = [...pol, [-20, -31, -9, -19, -16]];
    const ref3 = [...ref, [-19, -30, -8, -18.5, -13]];
    const g = new Graph();
    const policy = g.input('policy', 'float64', [3, 'rows']);
    const reference_ = g.input('reference', 'float64', [3, 'rows']);
    const lengths = g.input('lengths', 'float64', [3, 'rows']);
    const out = plackettLuceLoss({ policy, reference: reference_, lengths }, { beta: 0.5 });
    const c = await CompiledGraph.compile({ out });
    const r = await c.run({
      policy: { data: Float64Array.from(pol3.flat()), dims: [3, B] },
      reference: { data: Float64Array.from(ref3.flat()), dims: [3, B] },
      lengths: { data: new Float64Array(3 * B).fill(1), dims: [3, B] },
    });
    for (let i = 0; i < B; i++) {
      const rw = [0, 1, 2].map((k) => 0.5 * (pol3[k][i] - ref3[k][i]));
      const want = -(rw[0] - Math.log(Math.exp(rw[0]) + Math.exp(rw[1]) + Math.exp(rw[2]))) - (rw[1] - Math.log(Math.exp(rw[1]) + Math.exp(rw[2])));
      expect((r.out.data as Float64Array)[i]).toBeCloseTo(want, 10);
    }
  });

  it('combines weighted loss types, with sft as the token-mean NLL of chosen', async () => {
    const got = await evalGraph((lp) => preferenceLoss(lp, { beta: 0.1, lossTypes: ['sigmoid', 'sft'], lossWeights: [0.8, 0.2] }));
    let sigmoidMean = 0;
    for (let i = 0; i < B; i++) sigmoidMean += reference('sigmoid', pol[0][i] - ref[0][i], pol[1][i] - ref[1][i], 1, 1, 0.1, 0) / B;
    const sft = -pol[0].reduce((a, b) => a + b, 0) / len[0].reduce((a, b) => a + b, 0);
    expect(got[0]).toBeCloseTo(0.8 * sigmoidMean + 0.2 * sft, 10);
  });

  it('reference-free drops the reference', async () => {
    const got = await evalGraph((lp) => pairLoss('sigmoid', { ...lp, reference: undefined }, { beta: 0.1 }));
    for (let i = 0; i < B; i++) expect(got[i]).toBeCloseTo(-ls(0.1 * (pol[0][i] - pol[1][i])), 10);
  });

  it('rejects pairwise types for rankings', () => {
    const g = new Graph();
    const t = g.input('p', 'float64', [3, 'rows']);
    expect(() => preferenceLoss({ policy: t, lengths: t }, { beta: 0.1, lossTypes: ['ipo'] })).toThrow(/needs pairs/);
  });
});
