/**
 * Saving a checkpoint as a Hugging Face model folder that transformers' from_pretrained loads.
 *
 * Files are written one by one inside the folder, each to a temporary name that is renamed over
 * its target when complete: the folder itself is never moved or replaced, so saving into a mount
 * point (a Docker or Kubernetes volume) or under a read-only parent works, and an interrupted
 * save never makes the folder disappear. Once the new files are in place, weight files of the
 * previous save that the new one does not have (shards, .bin files) and a LoRA adapter's files
 * are removed, so the folder holds one model of one kind (see model-files.ts).
 */
import { copyFile, mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { dirname, isAbsolute, join, normalize, resolve, sep } from 'node:path';
import { DpoError } from '../errors.js';
import { tempSibling, writeBytesAtomic } from './atomic.js';
import type { FloatOutputDtype } from './dtypes.js';
import type { JsonObject } from './json-file.js';
import {
  ADAPTER_FILES,
  CONFIG_FILE,
  GENERATION_CONFIG_FILE,
  TOKENIZER_FILES,
  isWeightFile,
} from './model-files.js';
import { entriesOf, type TensorCollection } from './safetensors-write.js';
import { writeModelWeights } from './weights-write.js';
import { checkStorable } from './overflow-check.js';

export interface SaveCheckpointOptions {
  /** Written as config.json. */
  config: JsonObject;
  /** Written as model.safetensors (or shards past `maxShardSize`), names as given, in state-dict order. */
  tensors: TensorCollection;
  /** Stored dtype of the weights (default F32). */
  dtype?: FloatOutputDtype;
  /** Largest weight file in bytes; bigger checkpoints are sharded (default 2 GB, as transformers' "2GB"). */
  maxShardSize?: number;
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

/** Copies `src` over `dest` atomically (copyFile follows symlinks, so hub cache files become real files). */
async function copyFileAtomic(src: string, dest: string): Promise<void> {
  const tmp = tempSibling(dest);
  try {
    await copyFile(src, tmp);
    await rename(tmp, dest);
  } catch (e) {
    await rm(tmp, { force: true });
    throw new DpoError(`${dest}: cannot copy from ${src} (${(e as Error).message})`);
  }
}

/** Removes the files a save of the other kind (or an older save with other weight files) left. */
export async function removeStaleModelFiles(dir: string, keep: ReadonlySet<string>, stale: (name: string) => boolean): Promise<void> {
  for (const name of await readdir(dir)) {
    if (keep.has(name) || !stale(name)) continue;
    await rm(join(dir, name), { force: true });
  }
}

/**
 * Makes `dir` (and its parents) a folder; one clear line when something else is in the way.
 * Resolves to true when the folder is new.
 */
export async function ensureFolder(dir: string): Promise<boolean> {
  const existing = await stat(dir).catch(() => undefined);
  if (existing && !existing.isDirectory()) throw new DpoError(`${dir}: exists and is not a folder`);
  if (existing) return false;
  try {
    await mkdir(dir, { recursive: true });
  } catch (e) {
    throw new DpoError(`${dir}: cannot create the folder (${(e as Error).message})`);
  }
  return true;
}

/**
 * Runs `save` on the folder `dir`, creating it when missing; a folder this call created is
 * removed again when `save` fails (an existing one is left as the per-file writes left it).
 */
export async function saveIntoFolder(dir: string, save: () => Promise<void>): Promise<void> {
  const created = await ensureFolder(dir);
  try {
    await save();
  } catch (e) {
    if (created) await rm(dir, { recursive: true, force: true });
    throw e;
  }
}

/** Write config.json, model.safetensors and the tokenizer/extra files to `dir`, each atomically. */
export async function saveCheckpoint(dir: string, options: SaveCheckpointOptions): Promise<void> {
  const target = resolve(dir);
  const extra = Object.entries(options.extraFiles ?? {}).map(([name, content]) => [checkRelativeName(dir, name), content] as const);
  // Refused before any file is written (writeModelWeights checks too, for its other callers).
  checkStorable(entriesOf(options.tensors), options.dtype ?? 'F32');
  await saveIntoFolder(target, async () => {
    // The small files first, the weights last: a save that fails on a full disk leaves the
    // tokenizer in place rather than weights nothing can tokenize for.
    const written = new Set<string>([CONFIG_FILE]);
    await writeBytesAtomic(join(target, CONFIG_FILE), jsonText(options.config));
    if (options.tokenizerDir !== undefined && resolve(options.tokenizerDir) !== target) {
      const src = options.tokenizerDir;
      for (const name of [...TOKENIZER_FILES, GENERATION_CONFIG_FILE]) {
        if (name === GENERATION_CONFIG_FILE && options.generationConfig) continue;
        if (await isFile(join(src, name))) {
          await copyFileAtomic(join(src, name), join(target, name));
          written.add(name);
        }
      }
    }
    if (options.generationConfig) {
      await writeBytesAtomic(join(target, GENERATION_CONFIG_FILE), jsonText(options.generationConfig));
      written.add(GENERATION_CONFIG_FILE);
    }
    for (const [rel, content] of extra) {
      await mkdir(dirname(join(target, rel)), { recursive: true });
      await writeBytesAtomic(join(target, rel), content);
      written.add(rel);
    }
    for (const f of await writeModelWeights(target, options.tensors, { dtype: options.dtype, maxShardSize: options.maxShardSize })) written.add(f);
    await removeStaleModelFiles(target, written, (name) => isWeightFile(name) || ADAPTER_FILES.includes(name));
  });
}
