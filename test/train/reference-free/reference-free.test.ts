/**
 * CPO (sigmoid, hinge, ipo, simpo, alphapo) and ORPO: losses against their formulas on fixed
 * log-probs, float64 gradchecks, and both trainers end to end (ORPO through `dpo orpo`).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Graph, type Tensor } from '../../../src/engine/graph.js';
import { gradcheck } from '../../../src/engine/gradcheck.js';
import { CompiledGraph } from '../../../src/engine/runtime.js';
import { CPOTrainer } from '../../../src/train/reference-free/cpo.js';
import { silentProgress } from '../../../src/progress.js';
import { CPO_LOSS_TYPES, cpoLoss, orpoLoss, type CpoLossOptions } from '../../../src/train/reference-free/losses.js';
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
  const shape = (x: number): number => (o.alpha === 0 ? x : (1 - Math.exp(-o.alpha * x)) / o.alpha);
  switch (o.lossType) {
    case 'sigmoid': return sm(o.beta * (w - l));
    case 'hinge': return Math.max(0, 1 - o.beta * (w - l));
    case 'ipo': return (w - l - 1 / (2 * o.beta)) ** 2;
    case 'simpo': return sm(o.beta * (w - l) - o.simpoGamma);
    case 'alphapo': return sm(o.beta * (shape(w) - shape(l)) - o.simpoGamma);
  }
}

describe('reference-free losses', () => {
  for (const lossType of CPO_LOSS_TYPES) {
    it(`cpo ${lossType} matches its formula and passes a float64 gradcheck`, async () => {
      const o = { lossType, beta: 2, labelSmoothing: 0.1, simpoGamma: 0.7, alpha: lossType === 'alphapo' ? 0.3 : 0 };
      const got = await run((w, l) => cpoLoss(w, l, o));
      got.forEach((v, i) => expect(v).toBeCloseTo(cpoFormula(o, chosen[i], rejected[i]), 10));
      const r = await gradcheck(
        [{ name: 'w', shape: [5], values: chosen }, { name: 'l', shape: [5], values: rejected }],
        (x) => cpoLoss(x.w, x.l, o),
      );
      expect(r.maxRelError, JSON.stringify(r.worst)).toBeLessThan(1e-6);
    });
  }

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
});

describe('CPO and ORPO trainers', () => {
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
