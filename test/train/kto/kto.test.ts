/** KTO: the loss against its formula with a float64 gradcheck, the data layer, and `dpo kto` end to end. */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadKtoData } from '../../../src/data/load.js';
import { Graph } from '../../../src/engine/graph.js';
import { gradcheck } from '../../../src/engine/gradcheck.js';
import { CompiledGraph } from '../../../src/engine/runtime.js';
import { ktoKl, ktoLoss, type KtoLossOptions } from '../../../src/train/kto/loss.js';
import { runCli } from '../../cli/run-cli.js';
import { makeTinyGpt2, tempDir, writeSentimentPairs } from '../helpers.js';

const sig = (x: number): number => 1 / (1 + Math.exp(-x));
const r = [0.8, -1.3, 2.1, -0.2, 0.5];
const labels = [1, 0, 1, 0, 0];
const klPolicy = [-3.1, -2.2, -4.0, -1.5, -2.9];
const klRef = [-3.5, -2.0, -4.4, -1.9, -3.0];

describe('KTO loss', () => {
  for (const lossType of ['kto', 'apo_zero_unpaired'] as const) {
    it(`${lossType} matches its formula (weights, KL estimate) and passes a float64 gradcheck`, async () => {
      const o: KtoLossOptions = { lossType, beta: 0.5, desirableWeight: 1.5, undesirableWeight: 0.7 };
      const g = new Graph();
      const rT = g.input('r', 'float64', ['rows']);
      const yT = g.input('y', 'float64', ['rows']);
      const kl = ktoKl(g.input('kp', 'float64', ['rows']), g.input('kr', 'float64', ['rows']));
      const c = await CompiledGraph.compile({ out: ktoLoss(rT, yT, kl, o), kl }, { threads: 1 });
      const f = (a: number[]) => ({ data: Float64Array.from(a), dims: [5] });
      const out = await c.run({ r: f(r), y: f(labels), kp: f(klPolicy), kr: f(klRef) });
      await c.release();
      const z = Math.max(0, klPolicy.reduce((s, v, i) => s + v - klRef[i], 0) / 5);
      expect(Number(out.kl.data[0])).toBeCloseTo(z, 12);
      (out.out.data as Float64Array).forEach((v, i) => {
        const want = lossType === 'kto'
          ? labels[i] ? 1.5 * (1 - sig(0.5 * (r[i] - z))) : 0.7 * (1 - sig(0.5 * (z - r[i])))
          : labels[i] ? 1.5 * (1 - sig(0.5 * r[i])) : 0.7 * sig(0.5 * r[i]);
        expect(v).toBeCloseTo(want, 12);
      });
      const check = await gradcheck(
        [{ name: 'r', shape: [5], values: r }, { name: 'y', shape: [5], values: labels, differentiable: false }, { name: 'kp', shape: [5], values: klPolicy, differentiable: false }, { name: 'kr', shape: [5], values: klRef, differentiable: false }],
        (x) => ktoLoss(x.r, x.y, ktoKl(x.kp, x.kr), o),
      );
      expect(check.maxRelError, JSON.stringify(check.worst)).toBeLessThan(1e-6);
    });
  }
});

describe('dpo kto', () => {
  it('reads unpaired rows, splits pairs, and names a bad label by file and line', async () => {
    const dir = tempDir();
    const unpaired = join(dir, 'u.jsonl');
    writeFileSync(unpaired, [{ prompt: 'a', completion: ' b', label: true }, { prompt: 'c', completion: ' d', label: false }].map((x) => JSON.stringify(x)).join('\n'));
    const u = await loadKtoData(unpaired);
    expect(u.examples.map((e) => [e.prompt, e.completion, e.label])).toEqual([['a', ' b', true], ['c', ' d', false]]);
    const pairs = join(dir, 'p.jsonl');
    writeFileSync(pairs, JSON.stringify({ prompt: 'x', chosen: ' good', rejected: ' bad' }));
    expect((await loadKtoData(pairs)).examples.map((e) => [e.completion, e.label])).toEqual([[' good', true], [' bad', false]]);
    writeFileSync(unpaired, `${JSON.stringify({ prompt: 'a', completion: ' b', label: true })}\n${JSON.stringify({ prompt: 'a', completion: ' b', label: 'yes' })}\n`);
    await expect(loadKtoData(unpaired)).rejects.toThrow(/u\.jsonl:2: field 'label' must be true or false, got "yes"/);
  });

  it('trains on a split preference file: desirable rewards rise above undesirable ones, held out too', async () => {
    const dir = tempDir();
    const model = await makeTinyGpt2(join(dir, 'model'));
    writeSentimentPairs(join(dir, 'train.jsonl'), 32, 1);
    writeSentimentPairs(join(dir, 'eval.jsonl'), 12, 2);
    const r = await runCli([
      'kto', '--model', model, '--data', join(dir, 'train.jsonl'), '--eval-data', join(dir, 'eval.jsonl'), '--output', join(dir, 'out'),
      '--learning-rate', '5e-3', '--max-steps', '18', '--logging-steps', '6', '--lr-scheduler', 'constant',
      '--undesirable-weight', '1.2', '--cache-dir', join(dir, 'cache'), '--threads', '2',
    ]);
    expect(r.stderr).not.toMatch(/^dpo: /m);
    expect(r.code).toBe(0);
    const lines = readFileSync(join(dir, 'out', 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>);
    for (const key of ['loss', 'kl', 'rewards/chosen', 'rewards/rejected', 'rewards/margins', 'logps/chosen', 'logps/rejected', 'logits/chosen']) expect(lines[0], key).toHaveProperty(key);
    expect(lines[2]['rewards/margins']).toBeGreaterThan(lines[0]['rewards/margins']);
    const summary = JSON.parse(r.stdout) as { eval_metrics: Record<string, number> };
    expect(summary.eval_metrics['eval_rewards/margins']).toBeGreaterThan(0);
    expect(summary.eval_metrics.eval_kl).toBeGreaterThanOrEqual(0);
  });
});
