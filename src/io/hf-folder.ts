/**
 * Local Hugging Face model folders: config.json, model.safetensors or a sharded
 * model.safetensors.index.json, generation_config.json, tokenizer files.
 *
 * Tensor names are returned exactly as stored; mapping them onto a model's parameters is the
 * models layer's job.
 */
import { access, stat } from 'node:fs/promises';
import { isAbsolute, join, normalize, sep } from 'node:path';
import { DpoError } from '../errors.js';
import type { SafetensorsDtype } from './dtypes.js';
import { readJsonObject, type JsonObject } from './json-file.js';
import { CONFIG_FILE, GENERATION_CONFIG_FILE, WEIGHTS_FILE, WEIGHTS_INDEX_FILE } from './model-files.js';
import { SafetensorsFile, type Float32Tensor } from './safetensors.js';

export { saveCheckpoint, type SaveCheckpointOptions } from './hf-folder-save.js';
export * from './model-files.js';

export interface CheckpointTensorInfo {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  /** Absolute path of the .safetensors file holding it. */
  file: string;
}

/** A model folder whose tensors are read one at a time, on demand. */
export interface LazyCheckpoint {
  readonly dir: string;
  /** config.json, parsed. */
  readonly config: JsonObject;
  /** generation_config.json, parsed, when present. */
  readonly generationConfig: JsonObject | undefined;
  /** The .safetensors files holding the weights (one, or the shards in index order). */
  readonly weightFiles: string[];
  /** Tensor names as stored, sorted. */
  names(): string[];
  has(name: string): boolean;
  info(name: string): CheckpointTensorInfo;
  read(name: string): Promise<Float32Tensor>;
  close(): Promise<void>;
}

export interface Checkpoint {
  dir: string;
  config: JsonObject;
  generationConfig: JsonObject | undefined;
  tensors: Map<string, Float32Tensor>;
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

/** Shard names come from a JSON file; never let one point outside the model folder. */
function shardPath(dir: string, indexPath: string, shard: unknown, tensor: string): string {
  if (typeof shard !== 'string' || shard.length === 0) {
    throw new DpoError(`${indexPath}: weight_map entry for "${tensor}" is not a file name`);
  }
  const rel = normalize(shard);
  if (isAbsolute(rel) || rel === '..' || rel.startsWith(`..${sep}`)) {
    throw new DpoError(`${indexPath}: weight_map entry for "${tensor}" points outside the folder ("${shard}")`);
  }
  return join(dir, rel);
}

/** Which safetensors files hold which tensor, per the index or the single weights file. */
async function locateWeights(dir: string): Promise<{ files: string[]; owner: Map<string, string> | undefined }> {
  const single = join(dir, WEIGHTS_FILE);
  if (await exists(single)) return { files: [single], owner: undefined };
  const indexPath = join(dir, WEIGHTS_INDEX_FILE);
  const index = await readJsonObject(indexPath, true);
  if (!index) {
    const legacy = (await exists(join(dir, 'pytorch_model.bin'))) || (await exists(join(dir, 'pytorch_model.bin.index.json')));
    throw new DpoError(
      legacy
        ? `${dir}: has only PyTorch .bin weights; dpo-ts reads safetensors (convert with transformers' save_pretrained(safe_serialization=True))`
        : `${dir}: no ${WEIGHTS_FILE} or ${WEIGHTS_INDEX_FILE} found`,
    );
  }
  const map = index.weight_map;
  if (typeof map !== 'object' || map === null || Array.isArray(map)) {
    throw new DpoError(`${indexPath}: "weight_map" is missing or not an object`);
  }
  const owner = new Map<string, string>();
  const files: string[] = [];
  for (const [tensor, shard] of Object.entries(map as Record<string, unknown>)) {
    const file = shardPath(dir, indexPath, shard, tensor);
    if (!files.includes(file)) files.push(file);
    owner.set(tensor, file);
  }
  for (const file of files) {
    if (!(await exists(file))) throw new DpoError(`${indexPath}: shard ${file} is missing`);
  }
  return { files, owner };
}

/** Open a model folder: parses the JSON files and every weight header, reads no tensor data. */
export async function openCheckpoint(dir: string): Promise<LazyCheckpoint> {
  const info = await stat(dir).catch(() => undefined);
  if (info && !info.isDirectory()) throw new DpoError(`${dir}: is a file, not a model folder (give the folder holding config.json and the weights)`);
  if (!info) throw new DpoError(`${dir}: model folder does not exist`);
  const configPath = join(dir, CONFIG_FILE);
  if (!(await exists(configPath))) {
    throw new DpoError(`${dir}: no ${CONFIG_FILE}, so this is not a Hugging Face model folder`);
  }
  const config = await readJsonObject(configPath);
  const generationConfig = await readJsonObject(join(dir, GENERATION_CONFIG_FILE), true);
  const { files, owner } = await locateWeights(dir);

  const opened: SafetensorsFile[] = [];
  try {
    for (const f of files) opened.push(await SafetensorsFile.open(f));
  } catch (e) {
    await Promise.all(opened.map((f) => f.close()));
    throw e;
  }
  const byPath = new Map(opened.map((f) => [f.path, f]));
  const where = new Map<string, SafetensorsFile>();
  if (owner) {
    for (const [tensor, file] of owner) {
      const st = byPath.get(file)!;
      if (!st.has(tensor)) {
        await Promise.all(opened.map((f) => f.close()));
        throw new DpoError(`${join(dir, WEIGHTS_INDEX_FILE)}: tensor "${tensor}" is mapped to ${file}, which does not contain it`);
      }
      where.set(tensor, st);
    }
  } else {
    for (const name of opened[0].names()) where.set(name, opened[0]);
  }
  const names = [...where.keys()].sort();

  const lookup = (name: string): SafetensorsFile => {
    const f = where.get(name);
    if (!f) throw new DpoError(`${dir}: checkpoint has no tensor named "${name}"`);
    return f;
  };
  return {
    dir,
    config,
    generationConfig,
    weightFiles: files,
    names: () => [...names],
    has: (name) => where.has(name),
    info: (name) => {
      const f = lookup(name);
      const t = f.info(name);
      return { name, dtype: t.dtype, shape: [...t.shape], file: f.path };
    },
    read: (name) => lookup(name).readFloat32(name),
    close: async () => {
      await Promise.all(opened.map((f) => f.close()));
    },
  };
}

/** Load a whole model folder into memory (every tensor converted to float32). */
export async function loadCheckpoint(dir: string): Promise<Checkpoint> {
  const lazy = await openCheckpoint(dir);
  try {
    const tensors = new Map<string, Float32Tensor>();
    for (const name of lazy.names()) tensors.set(name, await lazy.read(name));
    return { dir, config: lazy.config, generationConfig: lazy.generationConfig, tensors };
  } finally {
    await lazy.close();
  }
}
