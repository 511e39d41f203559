/**
 * The trainable policy: model weights, optionally with LoRA adapters, as TrainStep parameter
 * specs plus the parameter transform that turns them into the model's weights in the graph.
 */
import type { Graph, Tensor } from '../../engine/graph.js';
import { resolveSaveDtype, type ModelSaveOptions } from '../../io/save-dtype.js';
import { parseShardSize } from '../../io/shards.js';
import { savePretrained, type Pretrained } from '../../models/pretrained.js';
import type { ParamSpec } from '../../engine/train-step.js';
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

export function buildPolicy(model: CausalLM, weights: ReadonlyMap<string, Float32Array>, lora: LoraOptions | undefined, seed: number): Policy {
  const shapes = new Map<string, readonly number[]>();
  const specs: ParamSpec[] = model.parameters().map((p) => {
    shapes.set(p.name, p.shape);
    return { name: p.name, shape: p.shape, data: weights.get(p.name) as Float32Array, trainable: !lora };
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
  params: ReadonlyMap<string, Float32Array>,
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
