/**
 * Writing .safetensors files the way the Rust implementation (and so `safetensors.torch`)
 * lays them out: tensors sorted by name and packed back to back, header JSON padded with
 * spaces to a multiple of 8 bytes, `__metadata__` {"format": "pt"} so transformers accepts it.
 */
import type { FileHandle } from 'node:fs/promises';
import { DpoError } from '../errors.js';
import { writeFileAtomic } from './atomic.js';
import { DTYPE_SIZES, floatToBf16Bits, floatToHalfBits, type FloatOutputDtype } from './dtypes.js';
import type { Float32Tensor } from './safetensors.js';

export interface WriteSafetensorsOptions {
  /** Stored element type; data is rounded to nearest even for F16/BF16. Default F32. */
  dtype?: FloatOutputDtype;
  /** Extra `__metadata__` entries; "format" defaults to "pt". */
  metadata?: Record<string, string>;
}

export type TensorCollection = ReadonlyMap<string, Float32Tensor> | Readonly<Record<string, Float32Tensor>>;

// Elements converted per write for F16/BF16, bounding the scratch buffer to 8 MiB.
const CONVERT_CHUNK = 1 << 22;

/** A collection's entries, in its own order. */
export function entriesOf(tensors: TensorCollection): [string, Float32Tensor][] {
  return tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors as Record<string, Float32Tensor>);
}

/** The header bytes (length prefix included) and the sorted tensor order they describe. */
export function buildSafetensorsHeader(
  tensors: TensorCollection,
  options: WriteSafetensorsOptions = {},
  path = '<memory>',
): { header: Uint8Array; order: [string, Float32Tensor][] } {
  const dtype = options.dtype ?? 'F32';
  const order = entriesOf(tensors).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  // Built as a list, not an object: JS objects would hoist integer-like tensor names first.
  const entries: [string, unknown][] = [['__metadata__', { format: 'pt', ...options.metadata }]];
  let offset = 0;
  for (const [name, t] of order) {
    if (name === '__metadata__' || name.length === 0) {
      throw new DpoError(`${path}: cannot write a tensor named "${name}"`);
    }
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new DpoError(`${path}: tensor "${name}" has invalid shape [${t.shape.join(', ')}]`);
    }
    if (count !== t.data.length) {
      throw new DpoError(
        `${path}: tensor "${name}" has ${t.data.length} elements but shape [${t.shape.join(', ')}] needs ${count}`,
      );
    }
    const bytes = count * DTYPE_SIZES[dtype];
    entries.push([name, { dtype, shape: [...t.shape], data_offsets: [offset, offset + bytes] }]);
    offset += bytes;
  }
  const json = `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`).join(',')}}`;
  const text = Buffer.from(json, 'utf-8');
  const padded = Math.ceil(text.length / 8) * 8;
  const header = Buffer.alloc(8 + padded, 0x20);
  header.writeBigUInt64LE(BigInt(padded), 0);
  text.copy(header, 8);
  return { header, order };
}

async function writeAll(handle: FileHandle, bytes: Uint8Array): Promise<void> {
  let done = 0;
  while (done < bytes.length) {
    const { bytesWritten } = await handle.write(bytes, done, Math.min(bytes.length - done, 1 << 30));
    done += bytesWritten;
  }
}

async function writeTensorData(handle: FileHandle, data: Float32Array, dtype: FloatOutputDtype): Promise<void> {
  if (dtype === 'F32') {
    await writeAll(handle, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    return;
  }
  const convert = dtype === 'F16' ? floatToHalfBits : floatToBf16Bits;
  const scratch = new Uint16Array(Math.min(CONVERT_CHUNK, data.length));
  for (let start = 0; start < data.length; start += scratch.length) {
    const n = Math.min(scratch.length, data.length - start);
    for (let i = 0; i < n; i++) scratch[i] = convert(data[start + i]);
    await writeAll(handle, new Uint8Array(scratch.buffer, 0, n * 2));
  }
}

/** Write `tensors` to `path` atomically (temp file in the same folder, then rename). */
export async function writeSafetensors(
  path: string,
  tensors: TensorCollection,
  options: WriteSafetensorsOptions = {},
): Promise<void> {
  const { header, order } = buildSafetensorsHeader(tensors, options, path);
  const dtype = options.dtype ?? 'F32';
  await writeFileAtomic(path, async (handle) => {
    await writeAll(handle, header);
    for (const [, t] of order) await writeTensorData(handle, t.data, dtype);
  });
}
