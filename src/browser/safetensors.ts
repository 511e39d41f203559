/**
 * safetensors from and to bytes in memory (the browser has no files): float32, float16 and
 * bfloat16 tensors in, float32 out, in the layout the Node reader and transformers load
 * (header sorted by name, `__metadata__.format = "pt"`, 8-byte aligned).
 */
import { DpoError } from '../errors.js';
import { bf16BitsToF32, f16BitsToF32 } from '../io/dtypes.js';

export interface MemoryTensor {
  data: Float32Array;
  shape: number[];
}

/** Every floating tensor of a .safetensors file's bytes, as float32. */
export function readSafetensorsBytes(bytes: ArrayBuffer, name = 'model.safetensors'): Map<string, MemoryTensor> {
  const view = new DataView(bytes);
  if (bytes.byteLength < 8) throw new DpoError(`${name}: too short for a safetensors file`);
  const headerLength = Number(view.getBigUint64(0, true));
  if (8 + headerLength > bytes.byteLength) throw new DpoError(`${name}: header length ${headerLength} runs past the end of the file`);
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(bytes, 8, headerLength))) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const start = 8 + headerLength;
  const out = new Map<string, MemoryTensor>();
  for (const [key, info] of Object.entries(header)) {
    if (key === '__metadata__') continue;
    const [a, b] = info.data_offsets;
    const n = info.shape.reduce((x, y) => x * y, 1);
    const raw = bytes.slice(start + a, start + b);
    const data = new Float32Array(n);
    if (info.dtype === 'F32') data.set(new Float32Array(raw));
    else if (info.dtype === 'F16') f16BitsToF32(new Uint16Array(raw), data);
    else if (info.dtype === 'BF16') bf16BitsToF32(new Uint16Array(raw), data);
    else continue; // integer buffers (e.g. position ids) are not parameters
    out.set(key, { data, shape: info.shape });
  }
  return out;
}

/** A float32 .safetensors file of `tensors`. */
export function safetensorsBytes(tensors: ReadonlyMap<string, MemoryTensor>): Uint8Array {
  const order = [...tensors.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const entries: string[] = [`"__metadata__":${JSON.stringify({ format: 'pt' })}`];
  let offset = 0;
  for (const [name, t] of order) {
    entries.push(`${JSON.stringify(name)}:${JSON.stringify({ dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] })}`);
    offset += t.data.byteLength;
  }
  const text = new TextEncoder().encode(`{${entries.join(',')}}`);
  const padded = Math.ceil(text.length / 8) * 8;
  const out = new Uint8Array(8 + padded + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.fill(0x20, 8, 8 + padded);
  out.set(text, 8);
  let at = 8 + padded;
  for (const [, t] of order) {
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), at);
    at += t.data.byteLength;
  }
  return out;
}
