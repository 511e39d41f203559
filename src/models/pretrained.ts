/**
 * Pretrained models: a Hugging Face model folder (or hub id) in, a `CausalLM` plus its weights
 * out, and the same layout written back.
 *
 * Memory: tensors are read one at a time (lazy checkpoint) and each parameter is held exactly
 * once, as one float32 array under its canonical name; the raw checkpoint is never kept as a
 * map next to the converted weights. A DPO reference model is *not* loaded here: with LoRA the
 * reference is the same weights with adapters off (see lora.ts); for full fine-tuning the caller
 * asks for it explicitly with a second `loadPretrained` call (which costs a second copy).
 */
import { join } from 'node:path';
import { stat } from 'node:fs/promises';
import { DpoError } from '../errors.js';
import type { FloatOutputDtype } from '../io/dtypes.js';
import { openCheckpoint, saveCheckpoint, type CheckpointTensorInfo } from '../io/hf-folder.js';
import { checkpointDtype, withStoredDtype } from '../io/save-dtype.js';
import { resolveModel, type ResolveModelOptions } from '../io/hub.js';
import type { JsonObject } from '../io/json-file.js';
import type { Float32Tensor } from '../io/safetensors.js';
import { loadTokenizer, type HfTokenizer } from '../io/tokenizer.js';
import { createModel } from './registry.js';
import type { CausalLM, ParamInfo } from './types.js';

export interface LoadPretrainedOptions {
  /** Load tokenizer.json (+ config files) from the folder when present (default true). */
  tokenizer?: boolean;
  /** Hub resolution options (environment, progress bar, fetch) for "org/name" references. */
  hub?: ResolveModelOptions;
}

export interface Pretrained {
  model: CausalLM;
  /** One float32 array per parameter, keyed by `model.parameters()` names (checkpoint keys). */
  weights: Map<string, Float32Array>;
  /** The local folder the model was read from (a hub cache snapshot for hub ids). */
  dir: string;
  /** config.json as read. */
  config: JsonObject;
  /** generation_config.json, when present. */
  generationConfig?: JsonObject;
  /** The folder's tokenizer, when it has tokenizer.json and `options.tokenizer` is not false. */
  tokenizer?: HfTokenizer;
  /**
   * The dtype the checkpoint stores its parameters in (most of their elements); `--save-dtype
   * auto` saves in it again. The weights themselves are always float32.
   */
  dtype: FloatOutputDtype;
  /**
   * Checkpoint keys that are neither parameters of the model nor known buffers. transformers
   * only warns about these; so do we (the caller decides whether to print them).
   */
  unexpectedKeys: string[];
}

const SHOW_AT_MOST = 10;

function listNames(names: readonly string[]): string {
  const shown = names.slice(0, SHOW_AT_MOST).map((n) => `"${n}"`).join(', ');
  return names.length > SHOW_AT_MOST ? `${shown} and ${names.length - SHOW_AT_MOST} more` : shown;
}

function fmtShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Resolve `ref` to a folder: an existing folder as is, otherwise a hub id through the HF cache. */
async function resolveDir(ref: string, hub: ResolveModelOptions | undefined): Promise<string> {
  return (await resolveModel(ref, hub)).dir;
}

/**
 * Load a causal LM from a local Hugging Face folder or a hub id ("org/name[@revision]").
 * Every parameter must be present with the expected shape; F16/BF16/F32 tensors are converted
 * to float32 one at a time. Buffers (GPT-2's attn.bias, rotary inv_freq, ...) are skipped.
 */
export async function loadPretrained(ref: string, options: LoadPretrainedOptions = {}): Promise<Pretrained> {
  const dir = await resolveDir(ref, options.hub);
  const ckpt = await openCheckpoint(dir);
  const weights = new Map<string, Float32Array>();
  const unexpectedKeys: string[] = [];
  const stored: CheckpointTensorInfo[] = [];
  let model: CausalLM;
  try {
    model = createModel(ckpt.config);
  } catch (e) {
    await ckpt.close();
    if (e instanceof DpoError) throw e;
    throw new DpoError(`${join(dir, 'config.json')}: ${(e as Error).message}`);
  }
  try {
    const expected = new Map<string, ParamInfo>(model.parameters().map((p) => [p.name, p]));
    for (const key of ckpt.names()) {
      const name = model.canonicalKey(key);
      if (name === undefined) continue; // a buffer, or a tied copy the model does not keep
      const param = expected.get(name);
      if (!param) {
        unexpectedKeys.push(key);
        continue;
      }
      if (weights.has(name)) continue; // the same parameter saved under two prefixes: first wins
      const found = ckpt.info(key).shape;
      if (!sameShape(found, param.shape)) {
        throw new DpoError(
          `${dir}: tensor "${key}" has shape ${fmtShape(found)}, but ${model.modelType} with this config.json expects ${fmtShape(param.shape)} for "${name}"`,
        );
      }
      const t: Float32Tensor = await ckpt.read(key);
      weights.set(name, t.data);
      stored.push(ckpt.info(key));
    }
    const missing = [...expected.keys()].filter((n) => !weights.has(n));
    if (missing.length > 0) {
      throw new DpoError(
        `${dir}: checkpoint is missing ${missing.length === 1 ? 'tensor' : `${missing.length} tensors`} ${listNames(missing)} that ${model.modelType} needs`,
      );
    }
  } finally {
    await ckpt.close();
  }
  const hasTokenizer = options.tokenizer !== false && (await stat(join(dir, 'tokenizer.json')).catch(() => undefined))?.isFile();
  const tokenizer = hasTokenizer ? await loadTokenizer(dir) : undefined;
  return {
    model,
    weights,
    dir,
    config: ckpt.config,
    generationConfig: ckpt.generationConfig,
    tokenizer,
    dtype: checkpointDtype(stored, ckpt.config),
    unexpectedKeys,
  };
}

export interface SavePretrainedOptions {
  model: CausalLM;
  /** Parameter values by `model.parameters()` name (e.g. `Pretrained.weights`, or `mergeLora`'s result). */
  weights: ReadonlyMap<string, Float32Array>;
  /** config.json to write (default `model.config.raw`); torch_dtype is set to the stored dtype. */
  config?: JsonObject;
  /** Folder to copy tokenizer files and generation_config.json from (e.g. `Pretrained.dir`). */
  tokenizerDir?: string;
  /** Written as generation_config.json (takes precedence over one in `tokenizerDir`). */
  generationConfig?: JsonObject;
  /** Stored dtype of the weights (default F32; `resolveSaveDtype` turns --save-dtype into one). */
  dtype?: FloatOutputDtype;
  /** Largest weight file in bytes; past it the weights are sharded (default 2 GB). */
  maxShardSize?: number;
  /** More files, by relative name. */
  extraFiles?: Readonly<Record<string, string | Uint8Array>>;
}

/**
 * The tensors `savePretrained` writes: exactly the model's parameters under the key names
 * transformers' save_pretrained uses (which is how `CausalLM.parameters()` names them: GPT-2
 * "transformer.…" without the tied lm_head, Llama "model.…" plus "lm_head.weight" unless tied).
 */
export function checkpointTensors(model: CausalLM, weights: ReadonlyMap<string, Float32Array>): Map<string, Float32Tensor> {
  const params = model.parameters();
  const known = new Set(params.map((p) => p.name));
  const extra = [...weights.keys()].filter((k) => !known.has(k));
  if (extra.length > 0) {
    throw new DpoError(`savePretrained: weights hold ${listNames(extra)}, which are not parameters of ${model.modelType} (merge LoRA adapters with mergeLora first)`);
  }
  const out = new Map<string, Float32Tensor>();
  for (const p of params) {
    const data = weights.get(p.name);
    if (!data) throw new DpoError(`savePretrained: no value for parameter "${p.name}"`);
    const n = p.shape.reduce((a, b) => a * b, 1);
    if (data.length !== n) {
      throw new DpoError(`savePretrained: "${p.name}" has ${data.length} values, but its shape ${fmtShape(p.shape)} needs ${n}`);
    }
    if (model.canonicalKey(p.name) !== p.name) {
      throw new Error(`${model.modelType}: parameter "${p.name}" does not map back to itself through canonicalKey`);
    }
    out.set(p.name, { data, shape: p.shape });
  }
  return out;
}

/**
 * Write `dir` in Hugging Face layout (config.json, model.safetensors or shards, tokenizer files) so that
 * transformers' AutoModelForCausalLM.from_pretrained loads it without missing-key warnings.
 * Atomic: the folder appears complete or not at all. Tensors are written from the given arrays
 * (no copy is made).
 */
export async function savePretrained(dir: string, options: SavePretrainedOptions): Promise<void> {
  const { model } = options;
  const tensors = checkpointTensors(model, options.weights);
  const dtype = options.dtype ?? 'F32';
  const config = withStoredDtype(options.config ?? (model.config.raw as JsonObject), dtype);
  await saveCheckpoint(dir, {
    config,
    tensors,
    dtype,
    maxShardSize: options.maxShardSize,
    tokenizerDir: options.tokenizerDir,
    generationConfig: options.generationConfig,
    extraFiles: options.extraFiles,
  });
}
