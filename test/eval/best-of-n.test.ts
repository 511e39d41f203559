/**
 * Best-of-N: the kept completion is the highest-reward one of its own N candidates (the same
 * candidates plain sampling draws with the same seed), from the library and from
 * `dpo generate --best-of N --scorer | --reward-model`.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../cli/run-cli.js';
import { bestOfN, bestOfNKl, type BestOfNResult } from '../../src/eval/best-of-n.js';
import { openRewardSource } from '../../src/eval/rewards.js';
import { wordCount } from '../../src/eval/scorers.js';
import { GenerationStopped, Generator } from '../../src/generate/generator.js';
import { loadPretrained, type Pretrained } from '../../src/models/pretrained.js';
import type { TextTokenizer } from '../../src/io/tokenizer-types.js';
import { bodyParameterNames, initScoreHead, saveRewardModel, SCORE_WEIGHT } from '../../src/scoring/reward-model.js';
import { makeTinyGpt2, tempDir } from '../train/helpers.js';

const PROMPTS = ['The movie was', 'Our trip'];

describe('Best-of-N sampling', () => {
  let dir: string;
  let modelDir: string;
  let pre: Pretrained;
  let gen: Generator;
  let promptsFile: string;

  beforeAll(async () => {
    dir = tempDir('dpo-ts-bon-');
    modelDir = await makeTinyGpt2(join(dir, 'model'), { seed: 3 });
    pre = await loadPretrained(modelDir);
    gen = await Generator.create(pre.model, { runtime: { threads: 1 } });
    promptsFile = join(dir, 'prompts.jsonl');
    writeFileSync(promptsFile, PROMPTS.map((p) => JSON.stringify({ prompt: p })).join('\n') + '\n');
  });
  afterAll(async () => {
    await gen.release();
  });

  it('keeps, for each group of N candidates, the one with the highest reward', async () => {
    const options = { maxNewTokens: 10, doSample: true, topK: 0, seed: 5, numSamples: 2, batchSize: 8 };
    const tokenizer = pre.tokenizer as TextTokenizer;
    // Reward: the completion's length in characters (candidates differ, ties are rare).
    const reward = async (_p: readonly string[], c: readonly string[]): Promise<Float64Array> => Float64Array.from(c, (s) => s.length);
    const r = await bestOfN(gen, pre.weights, tokenizer, PROMPTS, { ...options, n: 3, reward });
    const plain = await gen.generateText(pre.weights, tokenizer, PROMPTS, { ...options, numSamples: 6 });
    PROMPTS.forEach((_, i) => {
      expect(r.candidateRewards[i]).toEqual(plain.completions[i].map((c) => c.length));
      for (let j = 0; j < 2; j++) {
        const group = plain.completions[i].slice(3 * j, 3 * j + 3);
        const best = group.reduce((a, b) => (b.length > a.length ? b : a));
        expect(r.completions[i][j]).toBe(best);
        expect(r.rewards[i][j]).toBe(best.length);
        const c = plain.completions[i].indexOf(best, 3 * j);
        expect(r.tokenIds[i][j]).toEqual(plain.tokenIds[i][c]);
      }
    });
    expect(bestOfNKl(1)).toBe(0);
    expect(bestOfNKl(4)).toBeCloseTo(Math.log(4) - 0.75, 12);
  });

  it('a stop request after the first batch: GenerationStopped with the finished prompt ranked as an unstopped run ranks it', async () => {
    const options = { maxNewTokens: 10, doSample: true, topK: 0, seed: 5, numSamples: 1, batchSize: 3 };
    const tokenizer = pre.tokenizer as TextTokenizer;
    const reward = async (_p: readonly string[], c: readonly string[]): Promise<Float64Array> => Float64Array.from(c, (s) => s.length);
    const whole = await bestOfN(gen, pre.weights, tokenizer, PROMPTS, { ...options, n: 3, reward });
    let batches = 0;
    const err = await bestOfN(gen, pre.weights, tokenizer, PROMPTS, { ...options, n: 3, reward, onProgress: () => void batches++, stopRequested: () => batches >= 1 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GenerationStopped);
    const stopped = err as GenerationStopped<BestOfNResult>;
    // Batches of 3 candidates: the longest prompt's (sampled first) are done, the other's are not.
    const first = PROMPTS[0].length > PROMPTS[1].length ? 0 : 1;
    expect(stopped.done).toEqual(PROMPTS.map((_, i) => i === first));
    expect(stopped.partial.completions[first]).toEqual(whole.completions[first]);
    expect(stopped.partial.rewards[first]).toEqual(whole.rewards[first]);
    expect(stopped.partial.completions[1 - first]).toEqual([]);
  });

  it('dpo generate --best-of N --scorer writes the kept completions with their rewards', async () => {
    const out = join(dir, 'best.jsonl');
    const r = await runCli(['generate', '--model', modelDir, '--prompts', promptsFile, '--output', out, '--best-of', '4', '--scorer', 'length', '--max-new-tokens', '8', '--threads', '1']);
    expect(r.code, r.stderr).toBe(0);
    const rows = readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { prompt: string; completions: string[]; rewards: number[] });
    expect(rows.map((x) => x.prompt)).toEqual(PROMPTS);
    for (const row of rows) {
      expect(row.completions).toHaveLength(1);
      expect(row.rewards).toEqual([wordCount(row.completions[0])]);
    }
    const summary = JSON.parse(r.stdout) as { bestOf: { n: number; reward: string; keptRewardMean: number; candidateRewardMean: number } };
    expect(summary.bestOf.n).toBe(4);
    expect(summary.bestOf.reward).toBe('scorer:length');
    expect(summary.bestOf.keptRewardMean).toBeGreaterThanOrEqual(summary.bestOf.candidateRewardMean);
  });

  it('dpo generate --best-of N --reward-model ranks by the reward model (reward_offset applied)', async () => {
    const body = new Set(bodyParameterNames(pre.model));
    const weights = new Map([...pre.weights].filter(([n]) => body.has(n)));
    weights.set(SCORE_WEIGHT, initScoreHead(pre.model.config.hiddenSize, 1, 7));
    const rm = join(dir, 'rm');
    await saveRewardModel(rm, { model: pre.model, weights, offset: 0.5, padTokenId: 50256, tokenizerDir: modelDir });
    const out = join(dir, 'best-rm.jsonl');
    const r = await runCli(['generate', '--model', modelDir, '--prompts', promptsFile, '--output', out, '--best-of', '3', '--reward-model', rm, '--max-new-tokens', '6', '--threads', '1']);
    expect(r.code, r.stderr).toBe(0);
    const rows = readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { prompt: string; completions: string[]; rewards: number[] });
    const source = await openRewardSource({ rewardModel: rm });
    try {
      const again = await source.fn(rows.map((x) => x.prompt), rows.map((x) => x.completions[0]), 'check');
      rows.forEach((row, i) => expect(row.rewards[0]).toBeCloseTo(again[i], 4));
    } finally {
      await source.release();
    }
  });

  it('a reward without --best-of, or --best-of without a reward, is one error line', async () => {
    const base = ['generate', '--model', modelDir, '--prompts', promptsFile, '--output', join(dir, 'x.jsonl')];
    const a = await runCli([...base, '--best-of', '4']);
    expect(a.code).toBe(1);
    expect(a.stderr).toMatch(/^dpo: --best-of needs a reward/);
    const b = await runCli([...base, '--scorer', 'length']);
    expect(b.code).toBe(1);
    expect(b.stderr).toMatch(/^dpo: --scorer ranks Best-of-N candidates/);
    const c = await runCli([...base, '--best-of', '2', '--scorer', 'nope']);
    expect(c.stderr).toMatch(/^dpo: unknown scorer 'nope'/);
  });
});
