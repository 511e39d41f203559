/**
 * Splitting a checkpoint into shards the way transformers' save_pretrained does
 * (huggingface_hub's split_torch_state_dict_into_shards): tensors in state-dict order fill a shard
 * until the next one would pass `max_shard_size`; a tensor larger than that gets a shard of its
 * own. Files are named model-00001-of-00003.safetensors; a single shard is model.safetensors.
 */
import { DpoError } from '../errors.js';

/** The default `--max-shard-size`: "2GB" (decimal gigabytes, as transformers counts them). */
export const DEFAULT_MAX_SHARD_SIZE = 2_000_000_000;

const UNITS: Record<string, number> = {
  B: 1,
  KB: 1e3,
  MB: 1e6,
  GB: 1e9,
  TB: 1e12,
  KIB: 2 ** 10,
  MIB: 2 ** 20,
  GIB: 2 ** 30,
  TIB: 2 ** 40,
};

/**
 * A shard size in bytes from a number of bytes or a string such as "2GB", "500MB", "1GiB"
 * (transformers' convert_file_size_to_int: KB/MB/GB are powers of 10, KiB/MiB/GiB of 2, and a
 * lower-case final "b" means bits).
 */
export function parseShardSize(value: string | number, what = 'max shard size'): number {
  if (typeof value === 'number') {
    if (Number.isSafeInteger(value) && value > 0) return value;
    throw new DpoError(`${what} must be a positive whole number of bytes, got ${value}`);
  }
  const match = /^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$/.exec(value);
  const unit = match?.[2] ?? '';
  const scale = unit === '' ? 1 : UNITS[unit.toUpperCase()];
  if (!match || scale === undefined) {
    throw new DpoError(`${what} "${value}" is not a size: use bytes or a number with a unit, e.g. 2GB, 500MB, 1GiB`);
  }
  const bits = unit.length > 1 && unit.endsWith('b') && !unit.toUpperCase().endsWith('IB') ? 8 : 1;
  const bytes = Math.floor((Number(match[1]) * scale) / bits);
  if (!Number.isSafeInteger(bytes) || bytes < 1) throw new DpoError(`${what} "${value}" must be at least 1 byte`);
  return bytes;
}

/** Groups tensor names (in state-dict order, with their stored sizes) into shards. */
export function planShards(tensors: readonly (readonly [string, number])[], maxShardSize: number): string[][] {
  const shards: string[][] = [];
  let current: string[] = [];
  let size = 0;
  for (const [name, bytes] of tensors) {
    if (bytes > maxShardSize) {
      // huggingface_hub appends an oversized tensor as its own shard before the one being filled.
      shards.push([name]);
      continue;
    }
    if (size + bytes > maxShardSize && current.length > 0) {
      shards.push(current);
      current = [];
      size = 0;
    }
    current.push(name);
    size += bytes;
  }
  if (current.length > 0 || shards.length === 0) shards.push(current);
  return shards;
}

/** transformers' shard file name: model-00002-of-00005.safetensors. */
export function shardFileName(index: number, count: number): string {
  const pad = (n: number) => String(n).padStart(5, '0');
  return `model-${pad(index + 1)}-of-${pad(count)}.safetensors`;
}
