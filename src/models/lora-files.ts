/**
 * PEFT LoRA adapter folders on disk: saveLoraAdapter writes adapter_config.json and
 * adapter_model.safetensors, loadLoraAdapter reads them back for a model. The graph side (targets,
 * init, applyLora, mergeLora, the adapter_config.json contents) is lora.ts, which touches no file
 * and so also runs in the browser build.
 */
import { stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { DpoError } from '../errors.js';
import { writeBytesAtomic } from '../io/atomic.js';
import type { FloatOutputDtype } from '../io/dtypes.js';
import { removeStaleModelFiles, saveIntoFolder } from '../io/hf-folder-save.js';
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, isWeightFile } from '../io/model-files.js';
import { readJsonObject, type JsonObject } from '../io/json-file.js';
import { SafetensorsFile } from '../io/safetensors.js';
import { writeSafetensors } from '../io/safetensors-write.js';
import { adapterConfigJson, loraAdapterTensors, loraTargets, parseAdapterConfig, type LoraConfig } from './lora.js';
import type { CausalLM } from './types.js';

export interface SaveLoraOptions {
  model: CausalLM;
  /** Adapter values by PEFT name (initLora's keys; e.g. TrainStep.parameters() filtered). */
  adapters: ReadonlyMap<string, Float32Array>;
  config: LoraConfig;
  /** Recorded as base_model_name_or_path (a hub id or folder). */
  baseModelNameOrPath?: string;
  /** Stored dtype of adapter_model.safetensors (default F32, as PEFT keeps adapters in float32). */
  dtype?: FloatOutputDtype;
}

/**
 * Writes `dir`/adapter_config.json and `dir`/adapter_model.safetensors in PEFT's format
 * (keys "base_model.model.<module>.lora_A.weight" without the adapter name), each file atomically
 * inside the folder; a full model's weight files left there by an earlier save are removed.
 */
export async function saveLoraAdapter(dir: string, options: SaveLoraOptions): Promise<void> {
  const { model, config, adapters } = options;
  const tensors = loraAdapterTensors(model, adapters, config);
  const json = `${JSON.stringify(adapterConfigJson(model, config, options.baseModelNameOrPath ?? null), null, 2)}\n`;
  const target = resolve(dir);
  await saveIntoFolder(target, async () => {
    await writeSafetensors(join(target, ADAPTER_WEIGHTS_FILE), tensors, { dtype: options.dtype });
    await writeBytesAtomic(join(target, ADAPTER_CONFIG_FILE), json);
    // A full model saved here before would otherwise be what other tools load (see model-folder-kind.ts).
    await removeStaleModelFiles(target, new Set([ADAPTER_WEIGHTS_FILE, ADAPTER_CONFIG_FILE]), (name) => isWeightFile(name) || name === 'adapter_model.bin');
  });
}

export interface LoadedLoraAdapter {
  config: LoraConfig;
  /** A and B matrices by PEFT name. */
  adapters: Map<string, Float32Array>;
  baseModelNameOrPath?: string;
  /** adapter_config.json as read. */
  raw: JsonObject;
}

/** Reads a PEFT LoRA adapter folder (adapter_config.json + adapter_model.safetensors) for `model`. */
export async function loadLoraAdapter(dir: string, model: CausalLM): Promise<LoadedLoraAdapter> {
  const configPath = join(dir, ADAPTER_CONFIG_FILE);
  const raw = await readJsonObject(configPath);
  const config = parseAdapterConfig(raw, model, configPath);
  const weightsPath = join(dir, ADAPTER_WEIGHTS_FILE);
  if (!(await stat(weightsPath).catch(() => undefined))?.isFile()) {
    const bin = (await stat(join(dir, 'adapter_model.bin')).catch(() => undefined))?.isFile();
    throw new DpoError(`${dir}: no ${ADAPTER_WEIGHTS_FILE}${bin ? ' (only adapter_model.bin; dpo-ts reads safetensors)' : ''}`);
  }
  const file = await SafetensorsFile.open(weightsPath);
  const adapters = new Map<string, Float32Array>();
  try {
    const targets = loraTargets(model, config);
    const wanted = new Set(targets.flatMap((t) => [t.a, t.b]));
    // Older PEFT versions kept the adapter name ("lora_A.default.weight"); accept it.
    const canonical = (key: string) => key.replace(/\.(lora_[AB])\.default\.weight$/, '.$1.weight');
    const unexpected = file.names().filter((k) => !wanted.has(canonical(k)));
    if (unexpected.length > 0) {
      throw new DpoError(`${weightsPath}: tensors ${unexpected.slice(0, 10).map((k) => `"${k}"`).join(', ')} do not belong to the adapters adapter_config.json describes for ${model.modelType}`);
    }
    const byName = new Map(file.names().map((k) => [canonical(k), k]));
    for (const t of targets) {
      for (const [name, shape] of [[t.a, t.aShape], [t.b, t.bShape]] as const) {
        const key = byName.get(name);
        if (!key) throw new DpoError(`${weightsPath}: missing tensor "${name}"`);
        const found = file.info(key).shape;
        if (found.length !== 2 || found[0] !== shape[0] || found[1] !== shape[1]) {
          throw new DpoError(`${weightsPath}: tensor "${key}" has shape [${found.join(', ')}], expected [${shape.join(', ')}]`);
        }
        adapters.set(name, (await file.readFloat32(key)).data);
      }
    }
  } finally {
    await file.close();
  }
  const base = raw.base_model_name_or_path;
  return { config, adapters, baseModelNameOrPath: typeof base === 'string' ? base : undefined, raw };
}
