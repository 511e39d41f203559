/**
 * CPO (sigmoid, hinge, ipo, simpo, alphapo) and ORPO: losses against their formulas on fixed
 * log-probs, float64 gradchecks, and both trainers end to end (ORPO through `dpo orpo`).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Graph, type Tensor } from '../../../src/engine/graph.js';
import * as op from '../../../src/engine/ops.js';
import { gradcheck } from '../../../src/engine/gradcheck.js';
import { CompiledGraph } from '../../../src/engine/runtime.js';
import { CPO_OBJECTIVE, CPOTrainer } from '../../../src/train/reference-free/cpo.js';
import { CPO_CONFIG, parseCpoConfig } from '../../../src/train/reference-free/config.js';
import { silentProgress } from '../../../src/progress.js';
import { grad } from '../../../src/engine/autodiff.js';
import { CPO_LOSS_TYPES, cpoLoss, log1mexp, orpoLoss, type CpoLossOptions } from '../../../src/train/reference-free/losses.js';
import { runCli } from '../../cli/run-cli.js';
import { makeTinyGpt2, tempDir, writeSentimentPairs } from '../helpers.js';

const ls = (x: number): number => -Math.log1p(Math.exp(-x));
// Token-mean log-probs (all negative, as ORPO's odds need).
const chosen = [-1.2, -0.4, -2.5, -0.9, -1.7];
const rejected = [-1.5, -0.8, -1.1, -2.2, -1.6];

async function run(build: (w: Tensor, l: Tensor) => Tensor): Promise<number[]> {
  const g = new Graph();
  const w = g.input('w', 'float64', ['rows']);
  const l = g.input('l', 'float64', ['rows']);
  const c = await CompiledGraph.compile({ out: build(w, l) }, { threads: 1 });
  const r = await c.run({ w: { data: Float64Array.from(chosen), dims: [5] }, l: { data: Float64Array.from(rejected), dims: [5] } });
  await c.release();
  return Array.from(r.out.data as Float64Array);
}

function cpoFormula(o: Required<CpoLossOptions>, w: number, l: number): number {
  const sm = (z: number): number => -(1 - o.labelSmoothing) * ls(z) - o.labelSmoothing * ls(-z);
  // TRL's cpo_loss: the AlphaPO shape (1 - p^-alpha) / alpha applies to every loss type.
  const shape = (x: number): number => (o.alpha === 0 ? x : (1 - Math.exp(-o.alpha * x)) / o.alpha);
  const d = shape(w) - shape(l);
  switch (o.lossType) {
    case 'sigmoid': return sm(o.beta * d);
    case 'hinge': return Math.max(0, 1 - o.beta * d);
    case 'ipo': return (d - 1 / (2 * o.beta)) ** 2;
    case 'simpo': return sm(o.beta * d - o.simpoGamma);
    case 'alphapo': return sm(o.beta * d - o.simpoGamma);
  }
}

describe('reference-free losses', () => {
  for (const lossType of CPO_LOSS_TYPES) {
    for (const alpha of [0, 0.3]) {
      it(`cpo ${lossType} (alpha ${alpha}) matches TRL's formula and passes a float64 gradcheck`, async () => {
        const o = { lossType, beta: 2, labelSmoothing: 0.1, simpoGamma: 0.7, alpha };
        const got = await run((w, l) => cpoLoss(w, l, o));
        got.forEach((v, i) => expect(v).toBeCloseTo(cpoFormula(o, chosen[i], rejected[i]), 10));
        const r = await gradcheck(
          [{ name: 'w', shape: [5], values: chosen }, { name: 'l', shape: [5], values: rejected }],
          (x) => cpoLoss(x.w, x.l, o),
        );
        expect(r.maxRelError, JSON.stringify(r.worst)).toBeLessThan(1e-6);
      });
    }
  }

  it("alphapo has no NLL term (TRL's CPOConfig sets cpo_alpha 0); other types add cpoAlpha x NLL", async () => {
    for (const [lossType, nllWeight] of [['alphapo', 0], ['simpo', 1], ['sigmoid', 1]] as const) {
      const c = parseCpoConfig({ model: 'm', data: 'd.jsonl', output: 'o', lossType, alpha: 0.3 });
      expect(c.cpoAlpha).toBe(1);
      const got = await run((w, l) => CPO_OBJECTIVE.loss(c, w, l, op.scalar(w.graph, 2.5, 'float64')).loss);
      const pref = chosen.reduce((a, w, i) => a + cpoFormula({ ...c, simpoGamma: c.simpoGamma, labelSmoothing: c.labelSmoothing }, w, rejected[i]), 0) / chosen.length;
      expect(got[0]).toBeCloseTo(pref + nllWeight * 2.5, 10);
    }
    expect(CPO_CONFIG.schema.shape.cpoAlpha.description).toMatch(/alphapo sets it to 0/);
  });

  it('alphapo at alpha 0 is simpo', async () => {
    const a = await run((w, l) => cpoLoss(w, l, { lossType: 'alphapo', beta: 2, simpoGamma: 0.5, alpha: 0 }));
    const b = await run((w, l) => cpoLoss(w, l, { lossType: 'simpo', beta: 2, simpoGamma: 0.5 }));
    a.forEach((v, i) => expect(v).toBeCloseTo(b[i], 12));
  });

  it('orpo: -beta log sigmoid(log odds(y_w) - log odds(y_l)), with a float64 gradcheck', async () => {
    const got = await run((w, l) => orpoLoss(w, l, 0.25));
    const odds = (x: number): number => x - Math.log(1 - Math.exp(x));
    got.forEach((v, i) => expect(v).toBeCloseTo(-0.25 * ls(odds(chosen[i]) - odds(rejected[i])), 10));
    const r = await gradcheck([{ name: 'w', shape: [5], values: chosen }, { name: 'l', shape: [5], values: rejected }], (x) => orpoLoss(x.w, x.l, 0.25));
    expect(r.maxRelError, JSON.stringify(r.worst)).toBeLessThan(1e-6);
  });

  it('orpo keeps float32 precision for near-certain chosen completions (a stable log1mexp, as TRL)', async () => {
    // Token-mean log-probs in [-2e-3, -2e-4], where 1 - e^l cancels in float32 (the naive
    // log(1 - e^l) gave loss errors of 8e-6 and gradients off by 1e-4 here), and far ones.
    const w = [-2e-3, -1e-3, -5e-4, -2e-4, -0.05, -0.69, -0.7, -3];
    const l = [-2e-4, -1.5e-3, -1e-3, -3e-4, -0.04, -0.7, -0.69, -2.5];
    const g = new Graph();
    const tw = g.input('w', 'float32', ['rows']);
    const tl = g.input('l', 'float32', ['rows']);
    const loss = op.sum(orpoLoss(tw, tl, 0.25));
    const [dw, dl] = grad(loss, [tw, tl]);
    const c = await CompiledGraph.compile({ loss: orpoLoss(tw, tl, 0.25), dw, dl, m: log1mexp(tw) }, { threads: 1 });
    const r = await c.run({ w: { data: Float32Array.from(w), dims: [w.length] }, l: { data: Float32Array.from(l), dims: [l.length] } });
    await c.release();
    // float64 references of TRL's formula on the same float32-rounded inputs.
    const f32 = (x: number): number => Math.fround(x);
    const l1me = (x: number): number => Math.log(-Math.expm1(x));
    const sig = (z: number): number => 1 / (1 + Math.exp(-z));
    w.forEach((wi, i) => {
      const x = f32(wi), y = f32(l[i]);
      const z = x - y - (l1me(x) - l1me(y));
      expect(Math.abs((r.m.data as Float32Array)[i] - l1me(x)) / Math.abs(l1me(x))).toBeLessThan(1e-6);
      expect(Math.abs((r.loss.data as Float32Array)[i] - -0.25 * ls(z))).toBeLessThan(5e-7);
      // d loss / dz = -0.25 (1 - sigmoid(z)); dz/dx = 1 + e^x / (1 - e^x) = -1 / expm1(x).
      const dz = -0.25 * (1 - sig(z));
      const dx = dz * (-1 / Math.expm1(x)), dy = -dz * (-1 / Math.expm1(y));
      expect(Math.abs((r.dw.data as Float32Array)[i] - dx) / Math.abs(dx)).toBeLessThan(2e-6);
      expect(Math.abs((r.dl.data as Float32Array)[i] - dy) / Math.abs(dy)).toBeLessThan(2e-6);
    });
  });
});

describe('CPO and ORPO trainers', () => {
  it('with alpha, rewards/* are beta x the AlphaPO-shaped log-probs, as TRL logs them', async () => {
    const dir = tempDir();
    const model = await makeTinyGpt2(join(dir, 'model'));
    writeSentimentPairs(join(dir, 'train.jsonl'), 4, 1);
    await new CPOTrainer(
      { model, data: join(dir, 'train.jsonl'), output: join(dir, 'out'), lossType: 'sigmoid', alpha: 0.5, beta: 0.2, batchSize: 1, maxSteps: 1, loggingSteps: 1, threads: 1 },
      { progress: silentProgress },
    ).train();
    const [m] = readFileSync(join(dir, 'out', 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>);
    const shaped = (l: number): number => (1 - Math.exp(-0.5 * l)) / 0.5;
    expect(m['rewards/chosen']).toBeCloseTo(0.2 * shaped(m['logps/chosen']), 5);
    expect(m['rewards/rejected']).toBeCloseTo(0.2 * shaped(m['logps/rejected']), 5);
  });

  it('SimPO (dpo cpo --loss-type simpo --cpo-alpha 0) raises held-out reward accuracy and margin', async () => {
    const dir = tempDir();
    const model = await makeTinyGpt2(join(dir, 'model'));
    writeSentimentPairs(join(dir, 'train.jsonl'), 48, 1);
    writeSentimentPairs(join(dir, 'eval.jsonl'), 16, 2);
    const r = await new CPOTrainer(
      {
        model,
        data: join(dir, 'train.jsonl'),
        evalData: join(dir, 'eval.jsonl'),
        output: join(dir, 'out'),
        lossType: 'simpo',
        cpoAlpha: 0,
        beta: 2,
        simpoGamma: 0.3,
        learningRate: 5e-3,
        maxSteps: 18,
        loggingSteps: 6,
        lrScheduler: 'constant',
        threads: 2,
      },
      { progress: silentProgress },
    ).train();
    expect(r.evalMetrics?.['eval_rewards/accuracies']).toBeGreaterThan(0.8);
    expect(r.evalMetrics?.['eval_rewards/margins']).toBeGreaterThan(0);
    const lines = readFileSync(join(dir, 'out', 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>);
    expect(lines[2]['rewards/margins']).toBeGreaterThan(lines[0]['rewards/margins']);
    for (const key of ['loss', 'rewards/chosen', 'rewards/rejected', 'logps/chosen', 'logits/chosen', 'nll_loss']) expect(lines[0], key).toHaveProperty(key);
  });

  it('dpo orpo lowers the NLL of the chosen completions and separates the pairs; logs log_odds_*', async () => {
    const dir = tempDir();
    const model = await makeTinyGpt2(join(dir, 'model'));
    writeSentimentPairs(join(dir, 'train.jsonl'), 48, 1);
    const r = await runCli([
      'orpo', '--model', model, '--data', join(dir, 'train.jsonl'), '--output', join(dir, 'out'),
      '--learning-rate', '5e-3', '--beta', '0.5', '--max-steps', '18', '--logging-steps', '6', '--lr-scheduler', 'constant', '--threads', '2',
    ]);
    expect(r.stderr).not.toMatch(/^dpo: /m);
    expect(r.code).toBe(0);
    const lines = readFileSync(join(dir, 'out', 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>);
    expect(lines[2].nll_loss).toBeLessThan(lines[0].nll_loss);
    expect(lines[2].log_odds_chosen).toBeGreaterThan(lines[0].log_odds_chosen);
    expect(lines[2]['rewards/accuracies']).toBeGreaterThan(0.8);
    expect(lines[0]).toHaveProperty('log_odds_ratio');
    const bad = await runCli(['orpo', '--model', model, '--data', join(dir, 'train.jsonl'), '--output', join(dir, 'x'), '--loss-type', 'ipo']);
    expect(bad.code).not.toBe(0);
  });
});
