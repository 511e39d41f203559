/**
 * The one rule every command uses to tell what a model folder holds: a full model (weight files
 * such as model.safetensors, shards or pytorch_model*.bin) or a PEFT LoRA adapter
 * (adapter_config.json). A folder with both is refused rather than guessed at: one of them is a
 * leftover of an earlier save, and which one is stale cannot be known (dpo-ts's own saves remove
 * the files of the other kind, so only folders written otherwise get there).
 */
import { readdir, stat } from 'node:fs/promises';
import { DpoError } from '../errors.js';
import { ADAPTER_CONFIG_FILE, isWeightFile } from './model-files.js';

export type ModelFolderKind = 'full' | 'adapter';

/** 'full', 'adapter', or undefined when `dir` is not a folder or holds neither. */
export async function modelFolderKind(dir: string): Promise<ModelFolderKind | undefined> {
  if (!(await stat(dir).catch(() => undefined))?.isDirectory()) return undefined;
  const names = await readdir(dir);
  const weights = names.filter(isWeightFile);
  const adapter = names.includes(ADAPTER_CONFIG_FILE);
  if (adapter && weights.length > 0) {
    throw new DpoError(
      `${dir}: holds both a full model (${weights.join(', ')}) and a LoRA adapter (${ADAPTER_CONFIG_FILE}); one is left over from an earlier save: delete the stale files`,
    );
  }
  return adapter ? 'adapter' : weights.length > 0 ? 'full' : undefined;
}
