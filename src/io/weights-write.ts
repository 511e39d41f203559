/**
 * A model folder's weights as transformers' save_pretrained writes them: model.safetensors, or,
 * past the shard size, model-0000i-of-0000n.safetensors plus model.safetensors.index.json
 * ({"metadata": {"total_size"}, "weight_map"} with sorted keys, as json.dumps(sort_keys=True)).
 */
import { join } from 'node:path';
import { writeBytesAtomic } from './atomic.js';
import { DTYPE_SIZES, type FloatOutputDtype } from './dtypes.js';
import { checkStorable } from './overflow-check.js';
import { WEIGHTS_FILE, WEIGHTS_INDEX_FILE } from './model-files.js';
import { DEFAULT_MAX_SHARD_SIZE, planShards, shardFileName } from './shards.js';
import { entriesOf, writeSafetensors, type TensorCollection } from './safetensors-write.js';
import type { Float32Tensor } from './safetensors.js';

export interface WriteWeightsOptions {
  /** Stored dtype (default F32). */
  dtype?: FloatOutputDtype;
  /** Largest shard in bytes (default 2 GB, see shards.ts). */
  maxShardSize?: number;
}

function sortedObject<T>(entries: Iterable<readonly [string, T]>): Record<string, T> {
  const out: Record<string, T> = {};
  for (const [k, v] of [...entries].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) out[k] = v;
  return out;
}

/**
 * Writes the weights into `dir` (each file atomically) and returns the names of the files
 * written. Tensors keep the collection's order for sharding (a Map in state-dict order gives
 * transformers' split); each shard file stores its tensors sorted by name, as the Rust writer does.
 */
export async function writeModelWeights(dir: string, tensors: TensorCollection, options: WriteWeightsOptions = {}): Promise<string[]> {
  const dtype = options.dtype ?? 'F32';
  const entries = entriesOf(tensors);
  checkStorable(entries, dtype);
  const sizes = entries.map(([name, t]) => [name, t.data.length * DTYPE_SIZES[dtype]] as const);
  const shards = planShards(sizes, options.maxShardSize ?? DEFAULT_MAX_SHARD_SIZE);
  if (shards.length === 1) {
    await writeSafetensors(join(dir, WEIGHTS_FILE), tensors, { dtype });
    return [WEIGHTS_FILE];
  }
  const byName = new Map(entries);
  const weightMap: [string, string][] = [];
  const files: string[] = [];
  for (const [i, names] of shards.entries()) {
    const file = shardFileName(i, shards.length);
    await writeSafetensors(join(dir, file), new Map(names.map((n) => [n, byName.get(n) as Float32Tensor])), { dtype });
    for (const n of names) weightMap.push([n, file]);
    files.push(file);
  }
  const totalSize = sizes.reduce((sum, [, bytes]) => sum + bytes, 0);
  const index = { metadata: { total_size: totalSize }, weight_map: sortedObject(weightMap) };
  await writeBytesAtomic(join(dir, WEIGHTS_INDEX_FILE), `${JSON.stringify(index, null, 2)}\n`);
  return [...files, WEIGHTS_INDEX_FILE];
}
