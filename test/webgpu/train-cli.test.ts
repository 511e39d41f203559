/**
 * `dpo train --device webgpu` follows the CPU run's loss curve over 20 steps (parameters and
 * AdamW state staying on the GPU between steps, the reference log-probs scored on the GPU too),
 * and saves the same model. A tiny Llama with a 307-token tokenizer keeps it to seconds on
 * SwiftShader; the shipped model's 50k vocabulary makes each lm_head product take tens of seconds
 * there (a software GPU), so it is run only with DPO_TS_WEBGPU_SHIPPED=1 (same check).
 */
import { cpSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, expect, it } from 'vitest';
import { Rng } from '../../src/data/rng.js';
import { loadPretrained, savePretrained } from '../../src/models/pretrained.js';
import { createModel } from '../../src/models/registry.js';
import { runCli } from '../cli/run-cli.js';
import { maxDiff, tempDir, writeSentimentPairs } from '../train/helpers.js';
import { describeWebgpu } from './helpers.js';

const TOKENIZER = join(import.meta.dirname, '..', 'fixtures', 'tokenizers', 'llama-sp');
const SHIPPED = join(import.meta.dirname, '..', '..', 'assets', 'brown-gpt2');
let dir: string;
let tiny: string;
let data: string;

async function makeTinyLlama(out: string): Promise<string> {
  const config = {
    model_type: 'llama',
    architectures: ['LlamaForCausalLM'],
    vocab_size: 310,
    hidden_size: 16,
    intermediate_size: 32,
    num_hidden_layers: 1,
    num_attention_heads: 2,
    num_key_value_heads: 1,
    max_position_embeddings: 128,
    rms_norm_eps: 1e-6,
    rope_theta: 10000,
    tie_word_embeddings: false,
    bos_token_id: 1,
    eos_token_id: 2,
  };
  const model = createModel(config);
  const rng = new Rng(7);
  const weights = new Map<string, Float32Array>();
  for (const p of model.parameters()) {
    const w = new Float32Array(p.shape.reduce((a, b) => a * b, 1));
    const norm = /norm\.weight$/.test(p.name);
    for (let i = 0; i < w.length; i++) w[i] = norm ? 1 : (rng.nextFloat() - 0.5) * 0.2;
    weights.set(p.name, w);
  }
  await savePretrained(out, { model, weights, config });
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) cpSync(join(TOKENIZER, f), join(out, f));
  return out;
}

beforeAll(async () => {
  dir = tempDir('dpo-ts-webgpu-train-');
  tiny = await makeTinyLlama(join(dir, 'tiny'));
  data = join(dir, 'pairs.jsonl');
  writeSentimentPairs(data, 40, 11);
});

const losses = (out: string): number[] =>
  readFileSync(join(out, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, number>)
    .filter((m) => m.loss !== undefined)
    .map((m) => m.loss);

async function trainBoth(model: string, steps: number): Promise<void> {
  // One padded length for every batch: one set of WebGPU kernels, compiled once.
  const args = (device: string): string[] => ['train', '--model', model, '--data', data, '--output', join(dir, `${device}-${steps}`), '--max-steps', String(steps), '--batch-size', '2', '--learning-rate', '1e-3', '--logging-steps', '1', '--pad-to-multiple-of', '32', '--threads', '1', '--cache-dir', join(dir, `cache-${device}`), '--device', device];
  const cpu = await runCli(args('cpu'));
  expect(cpu.code, cpu.stderr).toBe(0);
  const started = Date.now();
  const gpu = await runCli(args('webgpu'));
  expect(gpu.code, gpu.stderr).toBe(0);
  const a = losses(join(dir, `cpu-${steps}`));
  const b = losses(join(dir, `webgpu-${steps}`));
  expect(b.length).toBe(steps);
  const worst = Math.max(...a.map((l, i) => Math.abs(l - b[i])));
  const w = (d: string): Promise<Map<string, Float32Array>> => loadPretrained(join(dir, `${d}-${steps}`), { tokenizer: false }).then((p) => p.weights);
  const weights = maxDiff(await w('webgpu'), await w('cpu'));
  console.log(`${model}: ${steps} steps, loss ${a[0].toFixed(4)} -> ${a[steps - 1].toFixed(4)}; largest loss difference ${worst.toExponential(2)}, saved weights within ${weights.toExponential(2)}; webgpu run ${((Date.now() - started) / 1000).toFixed(1)} s`);
  expect(a[steps - 1]).toBeLessThan(a[0]);
  expect(worst).toBeLessThan(1e-3);
}

describeWebgpu('dpo train --device webgpu', () => {
  it('follows the CPU loss curve for 20 steps (tiny llama)', () => trainBoth(tiny, 20), 600_000);
  it.runIf(process.env.DPO_TS_WEBGPU_SHIPPED === '1')('follows the CPU loss curve for 20 steps (shipped model)', () => trainBoth(SHIPPED, 20), 3_600_000);
});
