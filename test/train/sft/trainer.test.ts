import { cpSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { collatePreferences } from '../../../src/data/collate.js';
import { Graph, type Tensor } from '../../../src/engine/graph.js';
import { CompiledGraph } from '../../../src/engine/runtime.js';
import { readSafetensors } from '../../../src/io/safetensors.js';
import { loadPretrained } from '../../../src/models/pretrained.js';
import { silentProgress } from '../../../src/progress.js';
import { declareScoredInputs, scoredFeeds } from '../../../src/scoring/sequence-logps.js';
import { parseSftConfig, prepareSftSplit, SFTTrainer, tokenNll } from '../../../src/train/sft/index.js';
import { makeTinyGpt2, tempDir, writeSentimentPairs } from '../helpers.js';

function readMetrics(file: string): Record<string, number>[] {
  return readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
}

function writeJsonl(file: string, rows: unknown[]): void {
  writeFileSync(file, `${rows.map((r) => JSON.stringify(r)).join('\n')}\n`);
}

describe('SFTTrainer', () => {
  it('has TRL SFTConfig defaults', () => {
    const c = parseSftConfig({ model: 'm', data: 'd', output: 'o' });
    expect(c.learningRate).toBe(2e-5);
    expect(c.maxLength).toBe(1024);
    expect(() => parseSftConfig({ model: 'm', data: 'd', output: 'o', beta: 0.1 })).toThrow(/beta/);
  });

  it('per-token NLL of the completion equals a JS computation from the full logits (prompt masked)', async () => {
    const dir = tempDir();
    const p = await loadPretrained(await makeTinyGpt2(join(dir, 'model')));
    const tok = p.tokenizer!;
    writeJsonl(join(dir, 'pc.jsonl'), [
      { prompt: 'The movie was', completion: ' great fun.' },
      { prompt: 'A long prompt that goes on', completion: ' ok' },
    ]);
    const split = await prepareSftSplit(join(dir, 'pc.jsonl'), tok);
    expect(split.kind).toBe('sft');
    const batch = collatePreferences(split.rows, { padTokenId: tok.padTokenId });
    const g = new Graph('t');
    const params: Record<string, Tensor> = {};
    for (const q of p.model.parameters()) params[q.name] = g.input(q.name, 'float32', q.shape);
    const inputs = declareScoredInputs(g);
    const { nll } = tokenNll(p.model, params, inputs);
    const { hidden } = p.model.forward(params, { inputIds: inputs.inputIds, attentionMask: inputs.attentionMask });
    const logits = p.model.logits(params, hidden);
    const compiled = await CompiledGraph.compile({ nll, logits }, { threads: 2 });
    const feeds = { ...scoredFeeds(batch) } as Record<string, { data: Float32Array | BigInt64Array; dims: readonly number[] }>;
    for (const q of p.model.parameters()) feeds[q.name] = { data: p.weights.get(q.name)!, dims: q.shape };
    const out = await compiled.run(feeds);
    await compiled.release();
    const full = out.logits.data as Float32Array;
    const V = p.model.config.vocabSize;
    const T = batch.seqLen;
    const expected: number[] = [];
    for (let n = 0; n < batch.numSequences; n++) {
      const P = split.rows[n].promptIds.length;
      const ids = [...split.rows[n].promptIds, ...split.rows[n].completionIds[0]];
      // Positions P-1 .. L-2 predict the completion tokens; nothing before (prompt) is scored.
      for (let t = P - 1; t < ids.length - 1; t++) {
        const row = full.subarray((n * T + t) * V, (n * T + t + 1) * V);
        let m = -Infinity;
        for (const v of row) m = Math.max(m, v);
        let s = 0;
        for (const v of row) s += Math.exp(v - m);
        expected.push(m + Math.log(s) - row[ids[t + 1]]);
      }
    }
    const got = Array.from(out.nll.data as Float32Array);
    expect(got.length).toBe(expected.length);
    expect(got.length).toBe(split.rows.reduce((s, r) => s + r.completionIds[0].length, 0));
    got.forEach((v, i) => expect(v).toBeCloseTo(expected[i], 4));
  });

  it('trains plain text rows on every token and preference files on the chosen completions only', async () => {
    const dir = tempDir();
    const p = await loadPretrained(await makeTinyGpt2(join(dir, 'model')));
    const tok = p.tokenizer!;
    writeJsonl(join(dir, 'text.jsonl'), [{ text: 'Hello there, world.' }, { text: 'Another line' }]);
    const text = await prepareSftSplit(join(dir, 'text.jsonl'), tok);
    const tb = collatePreferences(text.rows, { padTokenId: tok.padTokenId });
    // GPT-2 has no BOS: every token but the first (which nothing predicts) is scored, EOS included.
    expect(Array.from(tb.completionLengths)).toEqual([tok.encode('Hello there, world.').length, tok.encode('Another line').length]);
    expect(Array.from(tb.promptLengths)).toEqual([0, 0]);

    writeSentimentPairs(join(dir, 'prefs.jsonl'), 6, 3);
    const prefs = await prepareSftSplit(join(dir, 'prefs.jsonl'), tok);
    expect(prefs.kind).toBe('preference');
    const lines = readFileSync(join(dir, 'prefs.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    prefs.rows.forEach((r, i) => {
      expect(r.completionIds).toHaveLength(1);
      expect(tok.decode(r.promptIds)).toBe(lines[i].prompt);
      expect(tok.decode(r.completionIds[0].slice(0, -1))).toBe(lines[i].chosen);
      expect(r.completionIds[0].at(-1)).toBe(tok.eosTokenId);
    });
  });

  it('lowers the loss on a preference file (Preferred-FT), logs TRL metrics, saves a loadable model', async () => {
    const dir = tempDir();
    const model = await makeTinyGpt2(join(dir, 'model'));
    writeSentimentPairs(join(dir, 'train.jsonl'), 32, 1);
    writeSentimentPairs(join(dir, 'eval.jsonl'), 8, 2);
    const r = await new SFTTrainer(
      {
        model,
        data: join(dir, 'train.jsonl'),
        evalData: join(dir, 'eval.jsonl'),
        output: join(dir, 'out'),
        learningRate: 1e-2,
        batchSize: 8,
        gradientAccumulationSteps: 2,
        maxSteps: 12,
        loggingSteps: 2,
        lrScheduler: 'constant',
        threads: 2,
      },
      { progress: silentProgress },
    ).train();
    expect(r.steps).toBe(12);
    const lines = readMetrics(join(dir, 'out', 'metrics.jsonl'));
    const train = lines.filter((l) => 'loss' in l);
    for (const key of ['loss', 'mean_token_accuracy', 'grad_norm', 'learning_rate', 'epoch', 'tokens_per_second']) expect(train[0], key).toHaveProperty(key);
    expect(train.at(-1)!.loss).toBeLessThan(train[0].loss - 2);
    expect(train.at(-1)!.mean_token_accuracy).toBeGreaterThan(train[0].mean_token_accuracy);
    const ev = lines.at(-1)!;
    expect(ev).toHaveProperty('eval_loss');
    expect(ev).toHaveProperty('eval_mean_token_accuracy');
    expect(existsSync(join(dir, 'out', 'model.safetensors'))).toBe(true);
    expect((await loadPretrained(join(dir, 'out'))).model.modelType).toBe('gpt2');
  });

  it('resumes from a checkpoint to the same weights as an uninterrupted run', async () => {
    const dir = tempDir();
    const model = await makeTinyGpt2(join(dir, 'model'));
    writeJsonl(
      join(dir, 'train.jsonl'),
      Array.from({ length: 12 }, (_, i) => ({ prompt: `Question ${i}:`, completion: ` answer ${i % 3} is right.` })),
    );
    const config = (output: string, resume: boolean) => ({
      model,
      data: join(dir, 'train.jsonl'),
      output,
      learningRate: 5e-3,
      batchSize: 4,
      maxSteps: 6,
      saveSteps: 3,
      loggingSteps: 1,
      threads: 1,
      resume,
    });
    await new SFTTrainer(config(join(dir, 'a'), false), { progress: silentProgress }).train();
    expect(existsSync(join(dir, 'a', 'checkpoint-3'))).toBe(true);
    cpSync(join(dir, 'a', 'checkpoint-3'), join(dir, 'b', 'checkpoint-3'), { recursive: true });
    writeFileSync(join(dir, 'b', 'metrics.jsonl'), '');
    const r = await new SFTTrainer(config(join(dir, 'b'), true), { progress: silentProgress }).train();
    expect(r.steps).toBe(6);
    expect(readMetrics(join(dir, 'b', 'metrics.jsonl')).map((l) => l.step)).toEqual([4, 5, 6]);
    const a = await readSafetensors(join(dir, 'a', 'model.safetensors'));
    const b = await readSafetensors(join(dir, 'b', 'model.safetensors'));
    for (const [k, t] of a) {
      const u = b.get(k)!.data;
      let diff = 0;
      for (let i = 0; i < t.data.length; i++) diff = Math.max(diff, Math.abs(t.data[i] - u[i]));
      expect(diff, k).toBeLessThan(1e-6);
    }
  });
});
