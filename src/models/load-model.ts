/**
 * Loading what a `--model` argument names, by the one rule of model-folder-kind.ts: a full model
 * (local folder or hub id), or a PEFT LoRA adapter folder (what `dpo train --lora-*` writes),
 * whose base model (`base_model_name_or_path`) is loaded and the adapters merged into it.
 */
import { isAbsolute, join } from 'node:path';
import { DpoError } from '../errors.js';
import { readJsonObject } from '../io/json-file.js';
import { modelFolderKind } from '../io/model-folder-kind.js';
import { ADAPTER_CONFIG_FILE } from '../io/model-files.js';
import { mergeLora } from './lora.js';
import { loadLoraAdapter } from './lora-files.js';
import { loadPretrained, type LoadPretrainedOptions, type Pretrained } from './pretrained.js';

export async function loadModelOrAdapter(ref: string, options: LoadPretrainedOptions = {}): Promise<Pretrained> {
  if ((await modelFolderKind(ref)) !== 'adapter') return loadPretrained(ref, options);
  const adapterConfig = join(ref, ADAPTER_CONFIG_FILE);
  const base = (await readJsonObject(adapterConfig)).base_model_name_or_path;
  if (typeof base !== 'string' || base.length === 0) throw new DpoError(`${adapterConfig}: no base_model_name_or_path; cannot tell which model the adapters belong to`);
  let p: Pretrained;
  try {
    p = await loadPretrained(base, options);
  } catch (e) {
    if (!(e instanceof DpoError)) throw e;
    // A relative path is read from the current directory, not the adapter's: say so, and where to fix it.
    const relative = isAbsolute(base) ? '' : `; a relative path is read from the current directory (${process.cwd()}), or else as a hub id`;
    throw new DpoError(`${ref}: cannot load the adapters' base model '${base}' (base_model_name_or_path in ${adapterConfig}${relative}; set it to the base model's folder or hub id): ${e.message}`);
  }
  const adapter = await loadLoraAdapter(ref, p.model);
  mergeLora(p.model, p.weights, adapter.adapters, adapter.config, { inPlace: true });
  return p;
}
