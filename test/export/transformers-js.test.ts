/**
 * `dpo export onnx` against transformers.js itself: every fixture family is exported, loaded
 * with @huggingface/transformers' AutoModelForCausalLM (on onnxruntime-node), and its logits
 * (the PyTorch fixtures' padded batches) and greedy generation (through its own KV-cache loop) must match
 * dpo-ts's.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AutoModelForCausalLM, AutoTokenizer, env, Tensor as HfTensor, type PreTrainedModel } from '@huggingface/transformers';
import { afterAll, describe, expect, it } from 'vitest';
import type { HostTensor } from '../../src/engine/runtime.js';
import { exportOnnx } from '../../src/export/index.js';
import { Generator } from '../../src/generate/generator.js';
import { loadPretrained } from '../../src/models/pretrained.js';
import { runCli } from '../cli/run-cli.js';
import { fixtureFamilies, loadFixture, MODEL_FIXTURES } from '../generate/helpers.js';
import { caseFeeds, compileFullForward, readCases, type FixtureCase } from '../models/fixture-harness.js';
import { initLora, loraConfig, mergeLora } from '../../src/models/lora.js';
import { saveLoraAdapter } from '../../src/models/lora-files.js';
import type { CausalLM } from '../../src/models/types.js';

const root = mkdtempSync(join(tmpdir(), 'dpo-export-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
env.allowRemoteModels = false;
env.localModelPath = `${root}/`;

function int64(rows: readonly number[][]): HfTensor {
  return new HfTensor('int64', BigInt64Array.from(rows.flat().map(BigInt)), [rows.length, rows[0].length]);
}

/** Max |transformers.js - dpo-ts| over the real (unpadded) positions of a fixture case. */
async function maxRealLogitError(hf: PreTrainedModel, model: CausalLM, weights: ReadonlyMap<string, Float32Array>, c: FixtureCase): Promise<number> {
  const feeds: Record<string, HostTensor> = {};
  for (const p of model.parameters()) feeds[p.name] = { data: weights.get(p.name) as Float32Array, dims: p.shape };
  const forward = await compileFullForward(model, 1);
  let ours: HostTensor;
  try {
    ours = (await forward.run({ ...feeds, ...caseFeeds(c) })).logits;
  } finally {
    await forward.release();
  }
  const out = (await hf({ input_ids: int64(c.input_ids), attention_mask: int64(c.attention_mask) })) as { logits: HfTensor };
  expect(out.logits.dims).toEqual(ours.dims);
  const v = model.config.vocabSize;
  const t = c.input_ids[0].length;
  const theirs = out.logits.data as Float32Array;
  let err = 0;
  let compared = 0;
  c.attention_mask.forEach((row, i) => row.forEach((m, j) => {
    if (!m) return;
    compared++;
    for (let k = (i * t + j) * v; k < (i * t + j + 1) * v; k++) err = Math.max(err, Math.abs(theirs[k] - (ours.data[k] as number)));
  }));
  expect(compared).toBeGreaterThan(0);
  return err;
}

const LOGIT_CASES = ['len5_full', 'len17_left_pad', 'len17_right_pad'];
const PROMPTS = [
  [3, 7, 1, 9, 4, 2],
  [5, 8, 6],
];
const NEW_TOKENS = 8;

describe('dpo export onnx loads in transformers.js', () => {
  for (const { folder, modelType } of fixtureFamilies()) {
    it(`${folder} (${modelType}): logits within 1e-4, greedy generation token for token`, async () => {
      const name = `export-${folder}`;
      // One family goes through external data (onnx/model.onnx_data), the rest embed the weights.
      const external = folder === 'llama';
      const result = await exportOnnx({ model: join(MODEL_FIXTURES, folder), output: join(root, name), externalData: external ? 'always' : 'never' });
      expect(result.externalData).toBe(external);
      expect(existsSync(join(root, name, 'onnx', 'model.onnx_data'))).toBe(external);
      const { model, weights } = await loadFixture(folder);
      const hf = await AutoModelForCausalLM.from_pretrained(name, { dtype: 'fp32' });
      try {
        const session = (hf as unknown as { sessions: { model: { inputNames: string[]; outputNames: string[] } } }).sessions.model;
        const layers = model.config.numLayers;
        expect(session.inputNames).toEqual([
          'input_ids', 'attention_mask', 'position_ids',
          ...Array.from({ length: layers }, (_, i) => [`past_key_values.${i}.key`, `past_key_values.${i}.value`]).flat(),
        ]);
        expect(session.outputNames).toEqual(['logits', ...Array.from({ length: layers }, (_, i) => [`present.${i}.key`, `present.${i}.value`]).flat()]);

        // Fixture batches with left and right padding; transformers.js derives position ids from the mask.
        for (const c of readCases(folder).filter((x) => LOGIT_CASES.includes(x.name))) {
          expect(await maxRealLogitError(hf, model, weights, c)).toBeLessThan(1e-4);
        }

        // Greedy decoding: transformers.js' cache loop against dpo-ts's generator.
        const eos = model.config.eosTokenId;
        const generator = await Generator.create(model, { runtime: { threads: 1 } });
        try {
          for (const prompt of PROMPTS) {
            const { sequences } = await generator.generateIds(weights, [prompt], { maxNewTokens: NEW_TOKENS, eosTokenIds: eos === undefined ? [] : [eos].flat() });
            const generated = (await hf.generate({ input_ids: int64([prompt]), max_new_tokens: NEW_TOKENS, do_sample: false })) as HfTensor;
            const ids = (generated.tolist() as bigint[][])[0].map(Number);
            expect(ids.slice(prompt.length)).toEqual(sequences[0][0].tokenIds);
          }
        } finally {
          await generator.release();
        }
      } finally {
        await hf.dispose();
      }
    });
  }

  it('the CLI exports the shipped model with its tokenizer: pipeline text matches dpo-ts greedy text', async () => {
    const shipped = join(import.meta.dirname, '..', '..', 'assets', 'brown-gpt2');
    const run = await runCli(['export', 'onnx', '--model', shipped, '--output', join(root, 'brown')]);
    expect(run.stderr).not.toContain('warning');
    expect(run.code).toBe(0);
    const summary = JSON.parse(run.stdout) as { files: string[]; modelType: string };
    expect(summary.modelType).toBe('gpt2');
    expect(summary.files).toEqual(expect.arrayContaining(['onnx/model.onnx', 'config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json']));

    const tokenizer = await AutoTokenizer.from_pretrained('brown');
    const hf = await AutoModelForCausalLM.from_pretrained('brown', { dtype: 'fp32' });
    const prompt = 'The movie was';
    const { input_ids } = tokenizer(prompt) as { input_ids: HfTensor };
    const out = (await hf.generate({ input_ids, max_new_tokens: 12, do_sample: false })) as HfTensor;
    const theirs = tokenizer.decode((out.tolist() as bigint[][])[0], { skip_special_tokens: true });
    await hf.dispose();

    const p = await loadPretrained(shipped);
    const generator = await Generator.create(p.model, { runtime: { threads: 1 } });
    const ours = await generator.generateText(p.weights, p.tokenizer!, [prompt], { maxNewTokens: 12, doSample: false });
    await generator.release();
    expect(theirs).toBe(prompt + ours.completions[0][0]);
  });

  it('a LoRA adapter folder is exported merged into its base', async () => {
    const base = join(MODEL_FIXTURES, 'llama');
    const { model, weights } = await loadFixture('llama');
    const config = loraConfig('llama', { r: 2, alpha: 4 });
    const adapters = initLora(model, config, 1);
    // PEFT starts B at zero (no change); give it values so that the merge shows in the logits.
    for (const [name, b] of adapters) if (name.includes('lora_B')) b.forEach((_, i) => (b[i] = 0.05 * Math.sin(i + 1)));
    const adapterDir = join(root, 'llama-adapter');
    await saveLoraAdapter(adapterDir, { model, adapters, config, baseModelNameOrPath: base });
    await exportOnnx({ model: adapterDir, output: join(root, 'export-lora') });
    const hf = await AutoModelForCausalLM.from_pretrained('export-lora', { dtype: 'fp32' });
    try {
      const c = readCases('llama').find((x) => x.name === 'len17_left_pad') as FixtureCase;
      expect(await maxRealLogitError(hf, model, mergeLora(model, weights, adapters, config), c)).toBeLessThan(1e-4);
      expect(await maxRealLogitError(hf, model, weights, c)).toBeGreaterThan(1e-3); // the adapters did change the model
    } finally {
      await hf.dispose();
    }
  });

  it('refuses a non-empty foreign folder and leaves it as it was; replaces an earlier export', async () => {
    const model = join(MODEL_FIXTURES, 'gpt2');
    const foreign = join(root, 'foreign');
    mkdirSync(foreign);
    writeFileSync(join(foreign, 'config.json'), '{"mine": true}');
    const refused = await runCli(['export', 'onnx', '--model', model, '--output', foreign]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^dpo: .*foreign: folder is not empty and is not an earlier dpo export.*\n$/);
    expect(readdirSync(foreign)).toEqual(['config.json']);
    expect(readFileSync(join(foreign, 'config.json'), 'utf8')).toBe('{"mine": true}');
    expect(readdirSync(root).filter((n) => n.startsWith('.foreign'))).toEqual([]);

    // The target folder is written into, never renamed or replaced (it may be a mount point):
    // same inode across exports, no staging folder left inside or beside it.
    const again = join(root, 'again');
    mkdirSync(again);
    const inode = statSync(again).ino;
    expect((await runCli(['export', 'onnx', '--model', model, '--output', again])).code).toBe(0);
    expect((await runCli(['export', 'onnx', '--model', model, '--output', again, '--external-data', 'always'])).code).toBe(0);
    expect(readdirSync(join(again, 'onnx')).sort()).toEqual(['model.onnx', 'model.onnx_data']);
    expect(statSync(again).ino).toBe(inode);
    expect((await runCli(['export', 'onnx', '--model', model, '--output', again])).code).toBe(0);
    expect(readdirSync(join(again, 'onnx'))).toEqual(['model.onnx']); // the earlier export's external data is gone
    expect(statSync(again).ino).toBe(inode);
    expect(readdirSync(again).filter((n) => n.startsWith('.'))).toEqual([]);
    expect(readdirSync(root).filter((n) => n.startsWith('.'))).toEqual([]);
    writeFileSync(join(again, 'notes.txt'), 'user file');
    const spoiled = await runCli(['export', 'onnx', '--model', model, '--output', again]);
    expect(spoiled.code).toBe(1);
    expect(spoiled.stderr).toContain('"notes.txt"');

    const bad = await runCli(['export', 'onnx', '--model', model, '--output', join(root, 'x'), '--external-data', 'sometimes']);
    expect(bad.stderr).toBe("dpo: --external-data: expected one of auto, always, never, got 'sometimes'\n");
  });
});
