/**
 * `dpo studio` in a real browser: Debian's chromium driven by playwright-core. The tab loads a
 * model folder, samples two completions per prompt, takes 8 choices by keyboard, trains 10 DPO
 * steps of LoRA adapters (the default: PEFT's r 8, alpha 8 on q_proj/v_proj), generates, and
 * downloads the PEFT adapter folder, which must load in Node as `dpo generate --model FOLDER`
 * loads it (the base from adapter_config.json, adapters merged) and give the tab's log-probs of the
 * labelled pairs. (Full fine-tuning's download is checked in Node, test/browser/dpo.test.ts.)
 * Skipped, with a message, when no chromium is installed.
 *
 * By default the model is a tiny Llama made here (the fixture tokenizer's 307-token vocabulary)
 * and the tab trains on wasm (onnxruntime-web's CPU provider), to keep the test short; set
 * DPO_TS_STUDIO_SHIPPED=1 for the shipped model (minutes on a loaded 2-core machine), and
 * DPO_TS_STUDIO_DEVICE=webgpu for WebGPU (SwiftShader under headless chromium: slow).
 */
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Download, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as ortWeb from 'onnxruntime-web';
import { collatePreferences, type PreferenceBatch } from '../../src/data/collate.js';
import { dtypeOfArray } from '../../src/engine/dtype.js';
import { Graph } from '../../src/engine/graph.js';
import { toOnnxBytes } from '../../src/engine/onnx-export.js';
import { loadModelOrAdapter } from '../../src/models/load-model.js';
import type { Pretrained } from '../../src/models/pretrained.js';
import { Scorer } from '../../src/scoring/scorer.js';
import { declareScoredInputs, scoredFeeds, sequenceLogps } from '../../src/scoring/sequence-logps.js';
import { createModel } from '../../src/models/registry.js';
import { savePretrained } from '../../src/models/pretrained.js';
import { Rng } from '../../src/data/rng.js';
import { runStudio, type RunningStudio } from '../../src/studio/run.js';
import { CHROMIUM, launchChromium, warnIfNoChromium } from '../browser.js';

warnIfNoChromium('test/studio/browser.test.ts');

const ROOT = join(import.meta.dirname, '..', '..');
const ARTEFACTS = join(ROOT, 'out', 'test-artifacts', 'studio');
const SHIPPED = process.env.DPO_TS_STUDIO_SHIPPED === '1';
const DEVICE = process.env.DPO_TS_STUDIO_DEVICE === 'webgpu' ? 'webgpu' : 'cpu';
const TINY_CONFIG = {
  model_type: 'llama', architectures: ['LlamaForCausalLM'], vocab_size: 307, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2,
  num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 128, rms_norm_eps: 1e-5, tie_word_embeddings: false, bos_token_id: 1, eos_token_id: 2,
};

/** A tiny Llama folder with random weights and the llama-sp fixture tokenizer. */
async function tinyModel(dir: string): Promise<string> {
  const model = createModel(TINY_CONFIG);
  const rng = new Rng(11);
  const weights = new Map(model.parameters().map((p) => [p.name, Float32Array.from({ length: p.shape.reduce((a, b) => a * b, 1) }, () => (p.name.includes('norm') ? 1 : (rng.nextFloat() - 0.5) * 0.2))]));
  await savePretrained(dir, { model, weights, config: TINY_CONFIG, tokenizerDir: join(ROOT, 'test', 'fixtures', 'tokenizers', 'llama-sp') });
  return dir;
}

const PROMPTS = ['The movie was', 'Our trip to the city', 'The new restaurant', 'I believe the plan', 'The book is', 'My neighbour said', 'The concert last night', 'This phone'];

interface PagePair {
  promptIds: number[];
  chosenIds: number[];
  rejectedIds: number[];
}
interface StudioState {
  ready: boolean;
  busy: boolean;
  error: string | null;
  pairs: PagePair[];
  history: { step: number; loss: number; rewardsChosen: number; rewardsRejected: number; accuracy: number }[];
  policyLogps?: number[];
  samples?: { prompt: string; reference: string; trained: string }[];
}

/**
 * Per-sequence log-probs of `batch` under a loaded model, computed in Node by onnxruntime-web's
 * wasm provider: the tab's kernels, so that the comparison checks the downloaded weights (native
 * CPU kernels differ from wasm ones by a few 1e-5 relative on these sums; measured below too).
 */
async function wasmLogps(pre: Pretrained, batch: PreferenceBatch): Promise<Float32Array> {
  const g = new Graph('score');
  const params = Object.fromEntries(pre.model.parameters().map((p) => [p.name, g.input(p.name, 'float32', p.shape)]));
  const { logps } = sequenceLogps(pre.model, params, declareScoredInputs(g));
  ortWeb.env.wasm.numThreads = 1;
  const session = await ortWeb.InferenceSession.create(toOnnxBytes({ logps }), { executionProviders: ['wasm'], graphOptimizationLevel: 'all' });
  const feeds: Record<string, ortWeb.Tensor> = {};
  for (const [name, t] of Object.entries(scoredFeeds(batch))) feeds[name] = new ortWeb.Tensor(dtypeOfArray(t.data) as 'int64' | 'float32', t.data as BigInt64Array, [...t.dims]);
  for (const p of pre.model.parameters()) feeds[p.name] = new ortWeb.Tensor('float32', pre.weights.get(p.name) as Float32Array, p.shape);
  const out = (await session.run(feeds)).logps.data as Float32Array;
  await session.release();
  return out;
}

const state = (page: Page): Promise<StudioState> =>
  page.evaluate(() => {
    const s = (globalThis as unknown as { studio: StudioState }).studio;
    return { ready: s.ready, busy: s.busy, error: s.error, pairs: s.pairs, history: s.history, policyLogps: s.policyLogps, samples: s.samples };
  });

/** Longest wait for one thing the page does. */
const WAIT_MS = SHIPPED || DEVICE === 'webgpu' ? 600_000 : 60_000;

async function until(page: Page, test: (s: StudioState) => boolean, what: string, timeoutMs = WAIT_MS): Promise<StudioState> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const s = await state(page);
    if (s.error) throw new Error(`page error while waiting for ${what}: ${s.error}`);
    if (test(s)) return s;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe.skipIf(!CHROMIUM)('dpo studio in chromium', () => {
  let browser: Browser;
  let studio: RunningStudio;
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'dpo-studio-'));
    writeFileSync(join(dir, 'prompts.jsonl'), PROMPTS.map((p) => `${JSON.stringify({ prompt: p })}\n`).join(''));
    const model = SHIPPED ? undefined : await tinyModel(join(dir, 'tiny'));
    studio = await runStudio({ port: 0, model, device: DEVICE, prompts: join(dir, 'prompts.jsonl'), steps: 10, maxNewTokens: 8, learningRate: SHIPPED ? 1e-3 : 1e-2 });
    browser = await launchChromium(DEVICE === 'webgpu' ? ['--enable-unsafe-webgpu'] : []);
  });
  afterAll(async () => {
    await browser?.close();
    await studio?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('labels 8 pairs, trains LoRA for 10 steps (the loss falls), and downloads an adapter that gives the tab log-probs in Node', async () => {
    const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1280, height: 720 } });
    const page = await context.newPage();
    await page.goto(studio.url);
    await until(page, (s) => s.ready && !s.busy, 'the model to load');
    expect(await page.textContent('#device')).toBe(DEVICE === 'webgpu' ? 'WebGPU' : 'wasm (CPU)');
    expect(await page.textContent('#mode')).toBe(SHIPPED ? 'LoRA r 8 (c_attn)' : 'LoRA r 8 (q_proj, v_proj)');
    expect(await page.textContent('#prompt-text')).toBe(PROMPTS[0]);
    for (let i = 0; i < PROMPTS.length; i++) {
      await page.keyboard.press(i % 3 === 0 ? '2' : '1');
      await until(page, (s) => s.pairs.length === i + 1 && !s.busy, `pair ${i + 1}`);
    }
    expect(await page.textContent('#labelled')).toBe('8 pairs labelled');

    await page.keyboard.press('t');
    const trained = await until(page, (s) => s.policyLogps !== undefined && !s.busy, 'training');
    const losses = trained.history.map((m) => m.loss);
    expect(losses).toHaveLength(10);
    expect(losses[0]).toBeCloseTo(Math.log(2), 5); // policy = reference at step 1
    expect(losses[9]).toBeLessThan(losses[0] - 0.05);
    expect(trained.history[9].rewardsChosen).toBeGreaterThan(trained.history[9].rewardsRejected);
    expect(await page.locator('#metrics tr').count()).toBe(10);

    await page.keyboard.press('g');
    const generated = await until(page, (s) => s.samples !== undefined && !s.busy, 'generation');
    expect(generated.samples).toHaveLength(3);
    mkdirSync(ARTEFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTEFACTS, 'studio.png') });

    const out = join(dir, 'trained');
    mkdirSync(out);
    const saved: Promise<void>[] = [];
    page.on('download', (d: Download) => saved.push(d.saveAs(join(out, d.suggestedFilename()))));
    await page.keyboard.press('d');
    const adapterFiles = ['adapter_config.json', 'adapter_model.safetensors'];
    await until(page, () => saved.length === adapterFiles.length, 'the downloads');
    await Promise.all(saved);
    expect(readdirSync(out).sort()).toEqual(adapterFiles);

    // The downloaded adapter folder loads as dpo generate loads it (its base_model_name_or_path is
    // the studio's model folder; adapters merged), and scores the pairs as the tab did.
    const pre = await loadModelOrAdapter(out);
    const batch = collatePreferences(
      trained.pairs.map((p, i) => ({ promptIds: p.promptIds, completionIds: [p.chosenIds, p.rejectedIds], origin: { file: 'page', line: i + 1 } })),
      { padTokenId: pre.tokenizer?.padTokenId ?? 0 },
    );
    const tab = trained.policyLogps as number[];
    const wasm = await wasmLogps(pre, batch);
    expect(wasm.length).toBe(16);
    const worst = Math.max(...tab.map((v, i) => Math.abs(v - wasm[i])));
    const worstRelative = Math.max(...tab.map((v, i) => Math.abs(v - wasm[i]) / Math.abs(v)));
    // wasm in the tab: the same kernels as here (the adapter path vs merged weights differ by
    // rounding only). WebGPU's float32 kernels differ: a relative bound (measured 1.0e-4 absolute
    // on sums near -45 with LoRA on SwiftShader).
    if (DEVICE === 'webgpu') expect(worstRelative).toBeLessThan(5e-5);
    else expect(worst).toBeLessThan(1e-4);
    // The native CPU provider (what dpo generate runs) agrees to float32 kernel differences.
    const scorer = await Scorer.create(pre.model, pre.model.parameters());
    const native = (await scorer.score(batch, pre.weights, new Map(pre.model.parameters().map((p) => [p.name, p.shape])))).logps;
    await scorer.release();
    const relative = Math.max(...tab.map((v, i) => Math.abs(v - native[i]) / Math.abs(v)));
    expect(relative).toBeLessThan(5e-4); // measured 9.2e-5 (wasm vs native float32 kernels)
    console.log(`studio (${SHIPPED ? 'shipped model' : 'tiny Llama'}, ${DEVICE}, LoRA): 10 steps, loss ${losses[0].toFixed(4)} -> ${losses[9].toFixed(4)}; downloaded adapter (merged) vs tab log-probs: wasm ${worst.toExponential(2)} (relative ${worstRelative.toExponential(2)}), native CPU relative ${relative.toExponential(2)}`);
    await context.close();
  }, SHIPPED || DEVICE === 'webgpu' ? 900_000 : 120_000);
});
