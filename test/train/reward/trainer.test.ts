import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { collatePreferences } from '../../../src/data/collate.js';
import { preparePreferenceData } from '../../../src/data/prepare.js';
import { Graph } from '../../../src/engine/graph.js';
import { CompiledGraph } from '../../../src/engine/runtime.js';
import { readSafetensors } from '../../../src/io/safetensors.js';
import { main } from '../../../src/cli/main.js';
import { loadPretrained } from '../../../src/models/pretrained.js';
import { silentProgress } from '../../../src/progress.js';
import {
  bodyParameterNames,
  initScoreHead,
  lastTokenIndices,
  loadRewardModel,
  rewardParameterShapes,
  RewardScorer,
  SCORE_WEIGHT,
} from '../../../src/scoring/reward-model.js';
import { bradleyTerryLoss, parseRewardConfig, rankingPairs, RewardTrainer } from '../../../src/train/reward/index.js';
import { makeTinyGpt2, tempDir, writeSentimentPairs } from '../helpers.js';

describe('reward model head', () => {
  it('reads the last non-padding token: a padded batch gives each row its reward alone', async () => {
    const dir = tempDir();
    const p = await loadPretrained(await makeTinyGpt2(join(dir, 'model')));
    const tok = p.tokenizer!;
    const weights = new Map([...p.weights].filter(([k]) => bodyParameterNames(p.model).includes(k)));
    weights.set(SCORE_WEIGHT, initScoreHead(p.model.config.hiddenSize, 0.5, 3));
    const scorer = await RewardScorer.create(p.model, rewardParameterShapes(p.model), { threads: 2 });
    const rows = ['Hi', 'A much longer prompt, with many more tokens in it', 'Mid length text'].map((t, i) => ({
      promptIds: tok.encode(t),
      completionIds: [[...tok.encode(` reply ${i}`), tok.eosTokenId]],
      origin: { file: 'x', line: i },
    }));
    for (const pad of [tok.padTokenId, 0]) {
      const batch = collatePreferences(rows, { padTokenId: pad });
      const together = await scorer.score(batch, weights, pad);
      for (let i = 0; i < rows.length; i++) {
        const alone = await scorer.score(collatePreferences([rows[i]], { padTokenId: pad }), weights, pad);
        expect(together[i]).toBeCloseTo(alone[0], 5);
      }
      const idx = lastTokenIndices(batch, pad);
      rows.forEach((r, i) => {
        const len = r.promptIds.length + r.completionIds[0].length;
        // GPT-2's pad is its EOS: like transformers, the reward reads the token before the EOS.
        expect(idx[i]).toBe(pad === tok.eosTokenId ? len - 2 : len - 1);
      });
    }
    expect(new Set(bodyParameterNames(p.model))).toEqual(new Set(p.model.parameters().map((q) => q.name)));
    await scorer.release();
  });

  it('Bradley-Terry loss over all ordered pairs of a ranking', async () => {
    expect(rankingPairs(3)).toEqual([[0, 1], [0, 2], [1, 2]]);
    const g = new Graph('bt');
    const r = g.input('r', 'float32', [6]);
    const compiled = await CompiledGraph.compile({ loss: bradleyTerryLoss(r, 3), centered: bradleyTerryLoss(r, 3, 0.5) }, { threads: 1 });
    const v = [1.0, -0.5, 0.2, 0.3, 0.1, -1.0]; // K=3, B=2: sequence k*2 + i
    const out = await compiled.run({ r: { data: Float32Array.from(v), dims: [6] } });
    const ls = (x: number): number => -Math.log(1 / (1 + Math.exp(-x)));
    let expected = 0;
    for (let i = 0; i < 2; i++) for (const [a, b] of rankingPairs(3)) expected += ls(v[a * 2 + i] - v[b * 2 + i]) / 6;
    expect(Number(out.loss.data[0])).toBeCloseTo(expected, 5);
    const center = ((v[0] + v[2] + v[4]) ** 2 + (v[1] + v[3] + v[5]) ** 2) / 2;
    expect(Number(out.centered.data[0])).toBeCloseTo(expected + 0.5 * center, 5);
    await compiled.release();
    expect(parseRewardConfig({ model: 'm', data: 'd', output: 'o' }).learningRate).toBe(1e-4);
  });
});

describe('RewardTrainer', () => {
  it('learns held-out preferences, centres rewards on the training prompts, saves a sequence-classification folder; dpo reward score keeps input order', async () => {
    const dir = tempDir();
    const model = await makeTinyGpt2(join(dir, 'model'));
    writeSentimentPairs(join(dir, 'train.jsonl'), 48, 1);
    writeSentimentPairs(join(dir, 'eval.jsonl'), 24, 2);
    const out = join(dir, 'rm');
    const r = await new RewardTrainer(
      {
        model,
        data: join(dir, 'train.jsonl'),
        evalData: join(dir, 'eval.jsonl'),
        output: out,
        learningRate: 3e-3,
        batchSize: 8,
        maxSteps: 18,
        loggingSteps: 3,
        lrScheduler: 'constant',
        threads: 2,
      },
      { progress: silentProgress },
    ).train();
    expect(r.steps).toBe(18);
    expect(r.evalMetrics!.eval_accuracy).toBeGreaterThan(0.85);
    expect(r.evalMetrics!.eval_margin).toBeGreaterThan(0);
    const lines = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    for (const key of ['loss', 'accuracy', 'margin', 'grad_norm', 'learning_rate', 'epoch', 'tokens_per_second']) expect(lines[0], key).toHaveProperty(key);
    expect(lines[0].loss).toBeCloseTo(Math.log(2), 0);
    expect(lines.at(-1)).toHaveProperty('eval_loss');

    // Hugging Face sequence-classification layout.
    const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
    expect(config.architectures).toEqual(['GPT2ForSequenceClassification']);
    expect(config.num_labels).toBe(1);
    expect(config.id2label).toEqual({ '0': 'LABEL_0' });
    expect(config.pad_token_id).toBe(50256);
    expect(config.reward_offset).toBeCloseTo(r.rewardOffset!, 6);
    const tensors = await readSafetensors(join(out, 'model.safetensors'));
    expect(tensors.get('score.weight')!.shape).toEqual([1, 16]);
    expect([...tensors.keys()].filter((k) => k !== 'score.weight').every((k) => k.startsWith('transformer.'))).toBe(true);
    expect(tensors.has('lm_head.weight')).toBe(false);

    // Loads back; normalised rewards have mean 0 over the training completions.
    const rm = await loadRewardModel(out);
    expect(rm.offset).toBeCloseTo(r.rewardOffset!, 6);
    const train = await preparePreferenceData(join(dir, 'train.jsonl'), rm.tokenizer!);
    const scorer = await RewardScorer.create(rm.model, rewardParameterShapes(rm.model), { threads: 2 });
    let sum = 0;
    let n = 0;
    for (let s = 0; s < train.rows.length; s += 16) {
      const raw = await scorer.score(collatePreferences(train.rows.slice(s, s + 16), { padTokenId: rm.padTokenId }), rm.weights, rm.padTokenId);
      for (const v of raw) sum += v - rm.offset;
      n += raw.length;
    }
    await scorer.release();
    expect(Math.abs(sum / n)).toBeLessThan(1e-4);
    expect(Math.abs(rm.offset)).toBeGreaterThan(0);

    // dpo reward score: rows in input order, normalised rewards.
    const rows = [
      { prompt: 'The movie 1', completion: ' was wonderful and fun.' },
      { prompt: 'The meal 2', completion: ' was awful and dull.' },
      { prompt: 'A much longer prompt about the show 3', completion: ' was great, I loved it.' },
      { prompt: 'My day 4', completion: ' was terrible, I hated it.' },
    ];
    writeFileSync(join(dir, 'samples.jsonl'), `${rows.map((x) => JSON.stringify(x)).join('\n')}\n`);
    let stdout = '';
    const io = { stdout: { write: (s: string) => (stdout += s) }, stderr: { write: () => true } };
    const code = await main(['reward', 'score', '--model', out, '--data', join(dir, 'samples.jsonl'), '--output', join(dir, 'scores.jsonl'), '--batch-size', '3', '--threads', '2'], io);
    expect(code).toBe(0);
    expect(JSON.parse(stdout).rows).toBe(4);
    const scored = readFileSync(join(dir, 'scores.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(scored.map((s) => s.line)).toEqual([1, 2, 3, 4]);
    expect(scored.map((s) => s.completion)).toEqual(rows.map((x) => x.completion));
    expect(scored[0].reward).toBeGreaterThan(scored[1].reward);
    expect(scored[2].reward).toBeGreaterThan(scored[3].reward);
    // Preference rows: every completion scored, best first.
    const prefOut = join(dir, 'pair-scores.jsonl');
    expect(await main(['reward', 'score', '--model', out, '--data', join(dir, 'eval.jsonl'), '--output', prefOut], io)).toBe(0);
    const pairs = readFileSync(prefOut, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(pairs).toHaveLength(24);
    expect(pairs.filter((p) => p.rewards[0] > p.rewards[1]).length).toBeGreaterThan(20);
  });
});
