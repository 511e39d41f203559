/**
 * Saving a checkpoint as a Hugging Face model folder that transformers' from_pretrained loads.
 *
 * Everything is written into a temporary sibling folder first and swapped in with renames, so
 * a failed or interrupted save never leaves a half-written checkpoint behind.
 */
import { copyFile, mkdir, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, isAbsolute, join, normalize, resolve, sep } from 'node:path';
import { DpoError } from '../errors.js';
import { swapFolder, tempSibling } from './atomic.js';
import type { FloatOutputDtype } from './dtypes.js';
import type { JsonObject } from './json-file.js';
import {
  CONFIG_FILE,
  GENERATION_CONFIG_FILE,
  TOKENIZER_FILES,
  WEIGHTS_FILE,
  isWeightFile,
} from './model-files.js';
import { writeSafetensors, type TensorCollection } from './safetensors-write.js';

export interface SaveCheckpointOptions {
  /** Written as config.json. */
  config: JsonObject;
  /** Written as model.safetensors, names as given. */
  tensors: TensorCollection;
  /** Stored dtype of the weights (default F32). */
  dtype?: FloatOutputDtype;
  /**
   * A folder whose tokenizer files (tokenizer.json, tokenizer_config.json,
   * special_tokens_map.json, chat templates) and generation_config.json are copied when present.
   */
  tokenizerDir?: string;
  /** Written as generation_config.json (takes precedence over one in `tokenizerDir`). */
  generationConfig?: JsonObject;
  /** More files to write, by relative name (e.g. "README.md", "training_args.json"). */
  extraFiles?: Readonly<Record<string, string | Uint8Array>>;
}

function jsonText(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

function checkRelativeName(dir: string, name: string): string {
  const rel = normalize(name);
  if (name.length === 0 || isAbsolute(rel) || rel === '..' || rel.startsWith(`..${sep}`)) {
    throw new DpoError(`${dir}: extra file name "${name}" must be a relative path inside the folder`);
  }
  return rel;
}

async function isFile(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined))?.isFile() ?? false;
}

async function fillFolder(tmp: string, dir: string, options: SaveCheckpointOptions): Promise<void> {
  await writeFile(join(tmp, CONFIG_FILE), jsonText(options.config));
  await writeSafetensors(join(tmp, WEIGHTS_FILE), options.tensors, { dtype: options.dtype });
  if (options.tokenizerDir !== undefined) {
    const src = options.tokenizerDir;
    for (const name of [...TOKENIZER_FILES, GENERATION_CONFIG_FILE]) {
      if (name === GENERATION_CONFIG_FILE && options.generationConfig) continue;
      // copyFile follows symlinks, so files from a hub cache snapshot are copied as real files.
      if (await isFile(join(src, name))) await copyFile(join(src, name), join(tmp, name));
    }
  }
  if (options.generationConfig) {
    await writeFile(join(tmp, GENERATION_CONFIG_FILE), jsonText(options.generationConfig));
  }
  for (const [name, content] of Object.entries(options.extraFiles ?? {})) {
    const rel = checkRelativeName(dir, name);
    await mkdir(dirname(join(tmp, rel)), { recursive: true });
    await writeFile(join(tmp, rel), content);
  }
}

/**
 * Swap the finished `tmp` folder in at `dir`. When `dir` already exists, its checkpoint files
 * are replaced as a whole and its other entries (logs, sub-folders) are carried over.
 */
async function swapIn(tmp: string, dir: string): Promise<void> {
  const existing = await stat(dir).catch(() => undefined);
  if (!existing) {
    await rename(tmp, dir);
    return;
  }
  if (!existing.isDirectory()) throw new DpoError(`${dir}: exists and is not a folder`);
  const old = await swapFolder(tmp, dir);
  const written = new Set(await readdir(dir));
  for (const name of await readdir(old)) {
    if (written.has(name) || isWeightFile(name)) continue;
    await rename(join(old, name), join(dir, name));
  }
  await rm(old, { recursive: true, force: true });
}

/** Write config.json, model.safetensors and the tokenizer/extra files to `dir`, atomically. */
export async function saveCheckpoint(dir: string, options: SaveCheckpointOptions): Promise<void> {
  const target = resolve(dir);
  await mkdir(dirname(target), { recursive: true });
  const tmp = tempSibling(target, 'saving');
  await mkdir(tmp);
  try {
    await fillFolder(tmp, target, options);
    await swapIn(tmp, target);
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
}

