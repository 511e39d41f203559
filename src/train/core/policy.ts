/**
 * The trainable policy: model weights, optionally with LoRA adapters, as TrainStep parameter
 * specs plus the parameter transform that turns them into the model's weights in the graph.
 */
import type { Graph, Tensor } from '../../engine/graph.js';
import { resolveSaveDtype, type ModelSaveOptions } from '../../io/save-dtype.js';
import { parseShardSize } from '../../io/shards.js';
import { savePretrained, type Pretrained } from '../../models/pretrained.js';
import type { ParamData, ParamSpec } from '../../engine/train-step.js';
import type { FrozenStorage } from '../../engine/frozen.js';
import { firstHalfOverflow, floatsToHalfBits } from '../../io/dtypes.js';
import { DpoError } from '../../errors.js';
import { applyLora, initLora, loraConfig, loraParameters, type LoraConfig } from '../../models/lora.js';
import { saveLoraAdapter } from '../../models/lora-files.js';
import type { CausalLM } from '../../models/types.js';
import { DropoutSites } from '../../models/dropout.js';
import type { ParamTransform } from '../../scoring/scorer.js';
import type { LoraOptions } from './config.js';
import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';

export interface Policy {
  model: CausalLM;
  specs: ParamSpec[];
  shapes: Map<string, readonly number[]>;
  /** Turns graph parameter inputs into model weights for evaluation and scoring (LoRA: adapters on, no dropout). */
  transform?: ParamTransform;
  /** As `transform`, for training graphs: LoRA dropout drawn on the adapter inputs when the config sets it. */
  trainTransform?: ParamTransform;
  lora?: LoraConfig;
  /** Names of the trainable parameters. */
  trainable: string[];
}

const LORA_DROPOUT_SEED_OFFSET = 0x10a;

/**
 * The frozen weights held as `storage`: the arrays themselves for float32, their float16 bits
 * (rounded to nearest even) for float16, for TrainStep and Scorer inputs (engine/frozen.ts);
 * float16 arrays pass through. A value beyond float16's range is refused, naming the tensor.
 * `consume` (the map `weights` came from, when the caller no longer needs it) drops each float32
 * array as soon as it is converted.
 */
export function frozenWeights(weights: ReadonlyMap<string, ParamData>, storage: FrozenStorage, options: { consume?: Map<string, Float32Array> } = {}): Map<string, ParamData> {
  if (storage === 'float32') return new Map(weights);
  const out = new Map<string, ParamData>();
  for (const [name, data] of weights) {
    if (data instanceof Uint16Array) {
      out.set(name, data);
      continue;
    }
    const half = floatsToHalfBits(data);
    // `consume`: the caller's float32 map gives each array up once it is converted (never two full copies).
    options.consume?.delete(name);
    const bad = firstHalfOverflow(data, half);
    if (bad >= 0) throw new DpoError(`frozenDtype float16: ${name} holds ${data[bad]}, beyond float16's range (±65504); use frozenDtype float32`);
    out.set(name, half);
  }
  return out;
}

/**
 * The policy's parameter specs (and LoRA adapters when `lora` is set). With LoRA the base weights
 * are frozen and held as `frozenDtype` (default float32; float16 halves their memory, values
 * rounded to float16), all but the vocabulary-sized matrices: read them back from `specs`, not
 * from `weights`.
 */
export function buildPolicy(
  model: CausalLM,
  weights: ReadonlyMap<string, ParamData>,
  lora: LoraOptions | undefined,
  seed: number,
  frozenDtype: FrozenStorage = 'float32',
  options: { consume?: Map<string, Float32Array> } = {},
): Policy {
  const shapes = new Map<string, readonly number[]>();
  if (!lora && [...weights.values()].some((w) => !(w instanceof Float32Array))) throw new DpoError('buildPolicy: full fine-tuning needs float32 weights');
  let held: ReadonlyMap<string, ParamData> = weights;
  if (lora) {
    // One tensor at a time, so that a consumed float32 array can go before the next is converted.
    const frozen = new Map<string, ParamData>();
    // Vocabulary-sized matrices (embeddings, the LM head) stay float32: the head's product would
    // need the whole matrix cast to float32 at once (Qwen3-0.6B: a 622 MB copy), more than it saves.
    const storage = (shape: readonly number[]): FrozenStorage => (shape.length === 2 && shape[0] === model.config.vocabSize ? 'float32' : frozenDtype);
    for (const p of model.parameters()) frozen.set(p.name, frozenWeights(new Map([[p.name, weights.get(p.name) as ParamData]]), storage(p.shape), options).get(p.name) as ParamData);
    held = frozen;
  }
  const specs: ParamSpec[] = model.parameters().map((p) => {
    shapes.set(p.name, p.shape);
    return { name: p.name, shape: p.shape, data: held.get(p.name) as ParamData, trainable: !lora };
  });
  if (!lora) return { model, specs, shapes, trainable: specs.map((s) => s.name) };
  const config = loraConfig(model.modelType, {
    r: lora.r,
    alpha: lora.alpha,
    dropout: lora.dropout,
    ...(lora.targetModules ? { targetModules: lora.targetModules } : {}),
  });
  const init = initLora(model, config, seed);
  const adapters = loraParameters(model, config).map((p) => {
    shapes.set(p.name, p.shape);
    return { name: p.name, shape: p.shape, data: init.get(p.name) as Float32Array, trainable: true };
  });
  const transform: ParamTransform = (_g: Graph, params: Record<string, Tensor>) => applyLora(model, params, params, config);
  // Own seed stream, so LoRA masks never repeat the model's --keep-dropout masks (same seed).
  const trainTransform: ParamTransform = (_g: Graph, params: Record<string, Tensor>) =>
    applyLora(model, params, params, config, { dropout: new DropoutSites(seed + LORA_DROPOUT_SEED_OFFSET) });
  return { model, specs: [...specs, ...adapters], shapes, transform, trainTransform, lora: config, trainable: adapters.map((a) => a.name) };
}

/**
 * What an adapter records as its base model: a local folder as an absolute path (so the adapter
 * loads from any working directory), anything else (a hub id) as given.
 */
export async function baseModelRecord(baseModel: string): Promise<string> {
  const st = await stat(baseModel).catch(() => undefined);
  return st?.isDirectory() ? resolve(baseModel) : baseModel;
}

/**
 * Writes a trained policy to `output`: the full model in Hugging Face layout (with the base
 * folder's tokenizer files), stored in `save.saveDtype` (default auto: the dtype the base model
 * was loaded in) and sharded past `save.maxShardSize`; or, with LoRA, PEFT adapter files naming
 * `baseModel` (float32 unless `save.saveDtype` names another dtype).
 */
export async function savePolicy(
  output: string,
  baseModel: string,
  pretrained: Pretrained,
  policy: Policy,
  params: ReadonlyMap<string, ParamData>,
  save: ModelSaveOptions = {},
): Promise<void> {
  if (policy.lora) {
    const adapters = new Map(policy.trainable.map((n) => [n, params.get(n) as Float32Array]));
    // PEFT keeps adapters in float32 whatever the base's dtype, so 'auto' means float32 here.
    const dtype = resolveSaveDtype(save.saveDtype, 'F32');
    await saveLoraAdapter(output, { model: policy.model, adapters, config: policy.lora, baseModelNameOrPath: await baseModelRecord(baseModel), dtype });
    return;
  }
  const weights = new Map(policy.model.parameters().map((p) => [p.name, params.get(p.name) as Float32Array]));
  await savePretrained(output, {
    model: policy.model,
    weights,
    tokenizerDir: pretrained.dir,
    generationConfig: pretrained.generationConfig,
    dtype: resolveSaveDtype(save.saveDtype, pretrained.dtype),
    maxShardSize: save.maxShardSize === undefined ? undefined : parseShardSize(save.maxShardSize),
  });
}
