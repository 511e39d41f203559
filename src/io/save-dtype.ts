/**
 * Which float type a saved model is stored in. `auto` (the default of every command that saves a
 * model) keeps the dtype the model was loaded in, as transformers does when a model loaded with
 * torch_dtype="auto" is saved: a bf16 checkpoint comes back as bf16. Training itself is always
 * float32; only the stored copy is rounded (to nearest even).
 */
import { DpoError } from '../errors.js';
import type { FloatOutputDtype, SafetensorsDtype } from './dtypes.js';
import type { JsonObject } from './json-file.js';

export const SAVE_DTYPES = ['auto', 'float32', 'bfloat16', 'float16'] as const;
export type SaveDtype = (typeof SAVE_DTYPES)[number];

const BY_TORCH_NAME: Record<Exclude<SaveDtype, 'auto'>, FloatOutputDtype> = { float32: 'F32', bfloat16: 'BF16', float16: 'F16' };

/** How a command that saves a model stores it (the `saveDtype` / `maxShardSize` options). */
export interface ModelSaveOptions {
  /** Default 'auto'. */
  saveDtype?: SaveDtype;
  /** Largest weight file: bytes, or a size such as "2GB" (default 2 GB); see shards.ts. */
  maxShardSize?: number | string;
}

/** torch's name of a stored dtype, as config.json's `torch_dtype` holds it. */
export function torchDtypeName(dtype: FloatOutputDtype): 'float32' | 'bfloat16' | 'float16' {
  return dtype === 'F32' ? 'float32' : dtype === 'BF16' ? 'bfloat16' : 'float16';
}

/** A config.json dtype string (`torch_dtype`, or `dtype` in transformers >= 4.56) as a stored dtype. */
function configDtype(config: JsonObject | undefined): FloatOutputDtype | undefined {
  const value = config?.torch_dtype ?? config?.dtype;
  if (value === 'float32' || value === 'bfloat16' || value === 'float16') return BY_TORCH_NAME[value];
  if (value === 'float64') return 'F32';
  return undefined;
}

/**
 * The dtype a checkpoint's weights are stored in: that of most of its floating-point elements
 * (a bf16 model may keep a few float32 buffers), else config.json's torch_dtype, else float32.
 * float64 weights count as float32 (there is no float64 save).
 */
export function checkpointDtype(tensors: readonly { dtype: SafetensorsDtype; shape: readonly number[] }[], config?: JsonObject): FloatOutputDtype {
  const counts = new Map<FloatOutputDtype, number>();
  for (const t of tensors) {
    const d = t.dtype === 'F64' ? 'F32' : t.dtype;
    if (d !== 'F32' && d !== 'F16' && d !== 'BF16') continue;
    counts.set(d, (counts.get(d) ?? 0) + t.shape.reduce((a, b) => a * b, 1));
  }
  let best: FloatOutputDtype | undefined;
  for (const [d, n] of counts) if (best === undefined || n > (counts.get(best) as number)) best = d;
  return best ?? configDtype(config) ?? 'F32';
}

/** The stored dtype for a save: `choice`, or with 'auto' (the default) the loaded model's. */
export function resolveSaveDtype(choice: SaveDtype | undefined, loaded: FloatOutputDtype | undefined): FloatOutputDtype {
  if (choice === undefined || choice === 'auto') return loaded ?? 'F32';
  const dtype = BY_TORCH_NAME[choice];
  if (!dtype) throw new DpoError(`save dtype must be one of ${SAVE_DTYPES.join(', ')}, got "${String(choice)}"`);
  return dtype;
}

/** `config` with its dtype entries set to what the weights are stored in. */
export function withStoredDtype(config: JsonObject, dtype: FloatOutputDtype): JsonObject {
  const name = torchDtypeName(dtype);
  // transformers >= 4.56 writes `dtype`; older ones read only `torch_dtype`. Keep whichever is there.
  return 'dtype' in config ? { ...config, torch_dtype: name, dtype: name } : { ...config, torch_dtype: name };
}
