/**
 * OnlineDPOTrainer end to end on a tiny GPT-2: the first step's metrics against a direct
 * computation from its pairs, an interrupted + resumed run byte-identical to an uninterrupted one
 * (samples included), beta per epoch, LoRA, and pairs ranked by an LLM judge over HTTP.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { collatePreferences } from '../../../src/data/collate.js';
import { loadPretrained } from '../../../src/models/pretrained.js';
import { OnlineDPOTrainer, type OnlinePair } from '../../../src/train/online/trainer.js';
import { silentProgress, type ProgressReporter } from '../../../src/progress.js';
import { Scorer } from '../../../src/scoring/scorer.js';
import { makeTinyGpt2, tempDir } from '../helpers.js';

const PROMPTS = ['The movie', 'This book', 'Our trip', 'The song', 'That game', 'My day'];

function readMetrics(file: string): Record<string, number>[] {
  return readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
}

/** Calls `onUpdate(done)` whenever the trainer reports progress of its 'online' bar. */
function watching(onUpdate: (done: number) => void): ProgressReporter {
  let label = '';
  return { ...silentProgress, start: (l) => void (label = l), update: (d) => void (label === 'online' && onUpdate(d)) };
}

const servers: Server[] = [];
afterAll(() => servers.forEach((s) => s.close()));

describe('OnlineDPOTrainer', () => {
  it("logs TRL's metrics, equal to a direct computation from the step's pairs", async () => {
    const dir = tempDir();
    const model = await makeTinyGpt2(join(dir, 'model'));
    const seen: OnlinePair[][] = [];
    const beta = 0.25;
    await new OnlineDPOTrainer(
      { model, output: join(dir, 'out'), prompts: PROMPTS, scorer: 'length', missingEosPenalty: 2, batchSize: 3, maxNewTokens: 5, maxSteps: 1, loggingSteps: 1, beta, threads: 1 },
      { progress: silentProgress, onPairs: (p) => seen.push(p.pairs) },
    ).train();
    expect(seen).toHaveLength(1);
    const pairs = seen[0];
    const [m] = readMetrics(join(dir, 'out', 'metrics.jsonl'));
    // The first step's policy is the reference: every log-ratio is 0, the sigmoid loss log 2.
    expect(m.loss).toBeCloseTo(Math.log(2), 6);
    expect(m['objective/kl']).toBe(0);
    expect(m['rewards/margins']).toBe(0);
    expect(m['rewards/accuracies']).toBe(0);
    // The rest from the pairs: sums of log-probs under the starting model, rewards as ranked.
    const pre = await loadPretrained(model);
    const scorer = await Scorer.create(pre.model, pre.model.parameters(), { threads: 1 });
    const batch = collatePreferences(pairs.map((p, i) => ({ promptIds: p.promptIds, completionIds: [p.chosenIds, p.rejectedIds], origin: { file: 't', line: i } })), { padTokenId: 50256 });
    const shapes = new Map(pre.model.parameters().map((p) => [p.name, p.shape] as const));
    const logps = (await scorer.score(batch, pre.weights, shapes)).logps;
    await scorer.release();
    const B = pairs.length;
    const mean = (a: ArrayLike<number>): number => Array.from(a).reduce((s, v) => s + v, 0) / a.length;
    expect(m['logps/chosen']).toBeCloseTo(mean(logps.slice(0, B)), 3);
    expect(m['logps/rejected']).toBeCloseTo(mean(logps.slice(B)), 3);
    expect(m['objective/entropy']).toBeCloseTo(-mean(logps), 3);
    // The length scorer counts words; a sample without EOS lost 2.
    for (const p of pairs) {
      const words = (t: string): number => t.trim().split(/\s+/).filter(Boolean).length;
      const eos = (ids: number[]): boolean => ids.at(-1) === 50256;
      expect(p.chosenScore).toBe(words(p.chosen) - (eos(p.chosenIds) ? 0 : 2));
      expect(p.rejectedScore).toBe(words(p.rejected) - (eos(p.rejectedIds) ? 0 : 2));
      expect(p.chosenScore as number).toBeGreaterThanOrEqual(p.rejectedScore as number);
    }
    const scores = pairs.flatMap((p) => [p.chosenScore as number, p.rejectedScore as number]);
    expect(m['objective/scores']).toBeCloseTo(mean(scores), 12);
    expect(m['objective/rlhf_reward']).toBeCloseTo(mean(scores), 12);
    expect(m['objective/scores_margin']).toBeCloseTo(mean(pairs.map((p) => (p.chosenScore as number) - (p.rejectedScore as number))), 12);
    const eosShare = mean(pairs.flatMap((p) => [p.chosenIds, p.rejectedIds]).map((ids) => (ids.at(-1) === 50256 ? 1 : 0)));
    expect(m['val/contain_eos_token']).toBeCloseTo(eosShare, 12);
    expect(m.beta).toBe(beta);
    for (const key of ['grad_norm', 'learning_rate', 'objective/non_score_reward', 'rewards/chosen', 'rewards/rejected']) expect(Number.isFinite(m[key]), key).toBe(true);
  }, 120_000);

  it('an interrupted and resumed run ends with the same bytes as an uninterrupted one, samples included', async () => {
    const dir = tempDir();
    const model = await makeTinyGpt2(join(dir, 'model'));
    const base = { model, prompts: PROMPTS, scorer: 'length', batchSize: 2, gradientAccumulationSteps: 2, maxNewTokens: 6, maxSteps: 4, loggingSteps: 1, learningRate: 1e-3, beta: [0.1, 0.2], threads: 1 };
    const samples = (into: string[]) => (p: { step: number; microBatch: number; pairs: OnlinePair[] }) => into.push(JSON.stringify(p));
    const straight: string[] = [];
    const full = await new OnlineDPOTrainer({ ...base, output: join(dir, 'full') }, { progress: silentProgress, onPairs: samples(straight) }).train();
    expect(full).toMatchObject({ steps: 4, interrupted: false });
    const metrics = readMetrics(join(dir, 'full', 'metrics.jsonl'));
    // 6 prompts, 2 per micro-batch, 2 micro-batches per step: 1.5 steps per epoch, so beta moves to 0.2 at step 2.
    expect(metrics.map((m) => m.beta)).toEqual([0.1, 0.1, 0.2, 0.2]);
    expect(metrics[3]['objective/kl']).not.toBe(0);

    const out = join(dir, 'resumed');
    const resumed: string[] = [];
    const trainer: OnlineDPOTrainer = new OnlineDPOTrainer({ ...base, output: out }, { progress: watching((d) => d === 2 && trainer.requestStop()), onPairs: samples(resumed) });
    expect(await trainer.train()).toMatchObject({ steps: 2, interrupted: true });
    expect(existsSync(join(out, 'checkpoint-2'))).toBe(true);
    expect(existsSync(join(out, 'model.safetensors'))).toBe(false);
    expect(await new OnlineDPOTrainer({ ...base, output: out, resume: true }, { progress: silentProgress, onPairs: samples(resumed) }).train()).toMatchObject({ steps: 4, interrupted: false });
    expect(resumed).toEqual(straight);
    expect(readFileSync(join(out, 'model.safetensors')).equals(readFileSync(join(dir, 'full', 'model.safetensors')))).toBe(true);
    const strip = (ms: Record<string, number>[]) => ms.map(({ tokens_per_second: _, ...m }) => m);
    expect(strip(readMetrics(join(out, 'metrics.jsonl')))).toEqual(strip(metrics));

    // A changed sampling option is refused on resume.
    await expect(new OnlineDPOTrainer({ ...base, output: out, resume: join(out, 'checkpoint-2'), temperature: 0.5 }, { progress: silentProgress }).train()).rejects.toThrow(/temperature/);
  }, 180_000);

  it('trains LoRA adapters, sampling through them, on the quickstart prompts by default', async () => {
    const dir = tempDir();
    const model = await makeTinyGpt2(join(dir, 'model'));
    const r = await new OnlineDPOTrainer(
      { model, output: join(dir, 'lora'), scorer: 'length', batchSize: 2, maxNewTokens: 4, maxSteps: 3, loggingSteps: 1, learningRate: 5e-2, lora: { r: 4, alpha: 8 }, threads: 1 },
      { progress: silentProgress },
    ).train();
    expect(r.steps).toBe(3);
    expect(existsSync(join(dir, 'lora', 'adapter_model.safetensors'))).toBe(true);
    expect(existsSync(join(dir, 'lora', 'model.safetensors'))).toBe(false);
    // B starts at 0: the first samples come from the base; after two updates the adapters moved the policy.
    const metrics = readMetrics(join(dir, 'lora', 'metrics.jsonl'));
    expect(metrics[0]['objective/kl']).toBe(0);
    expect(metrics[2]['objective/kl']).not.toBe(0);
  }, 120_000);

  it('ranks with an LLM judge over HTTP (here: the longer completion wins)', async () => {
    let asked = 0;
    const server = createServer((req, res) => {
      let raw = '';
      req.on('data', (c: Buffer) => (raw += c.toString('utf8')));
      req.on('end', () => {
        asked++;
        const content = (JSON.parse(raw) as { messages: { content: string }[] }).messages[0].content;
        const a = /Response A:\n(.*)\n\nResponse B:/s.exec(content)?.[1] ?? '';
        const b = /Response B:\n(.*)\n\nFIRST/s.exec(content)?.[1] ?? '';
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ choices: [{ message: { content: `More helpful: ${a.length >= b.length ? 'A' : 'B'}` } }] }));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    servers.push(server);
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
    const dir = tempDir();
    const model = await makeTinyGpt2(join(dir, 'model'));
    const seen: OnlinePair[] = [];
    const r = await new OnlineDPOTrainer(
      { model, output: join(dir, 'judged'), prompts: PROMPTS, judgeUrl: url, judgeModel: 'fake', batchSize: 3, maxNewTokens: 6, maxSteps: 2, loggingSteps: 1, threads: 1 },
      { progress: silentProgress, onPairs: (p) => seen.push(...p.pairs) },
    ).train();
    expect(r.steps).toBe(2);
    expect(seen).toHaveLength(6);
    for (const p of seen) {
      expect(p.chosenScore).toBeUndefined();
      // Different lengths: the judge (asked in both orders) picked the longer; equal: the first sample.
      if (p.chosen.trim().length !== p.rejected.trim().length) expect(p.chosen.trim().length).toBeGreaterThan(p.rejected.trim().length);
    }
    expect(asked).toBeGreaterThan(0);
    const m = readMetrics(join(dir, 'judged', 'metrics.jsonl'))[1];
    expect(m['objective/scores']).toBeUndefined();
    expect(Number.isFinite(m['objective/kl'])).toBe(true);
  }, 120_000);
});
