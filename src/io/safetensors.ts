/**
 * Reading .safetensors files: an 8-byte little-endian header length, a JSON header
 * ({name: {dtype, shape, data_offsets}}, plus optional "__metadata__"), then the raw tensor bytes.
 *
 * Tensors are read one at a time through a file descriptor, so a multi-gigabyte checkpoint is
 * never held in memory twice (once as file bytes, once as Float32Arrays).
 */
import { open, type FileHandle } from 'node:fs/promises';
import { endianness } from 'node:os';
import { DpoError } from '../errors.js';
import {
  DTYPE_SIZES,
  bf16BitsToF32,
  f16BitsToF32,
  isSafetensorsDtype,
  type SafetensorsDtype,
} from './dtypes.js';

export type { SafetensorsDtype } from './dtypes.js';

/** One tensor entry of a safetensors header. */
export interface TensorInfo {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  /** [begin, end) relative to the start of the data section, as stored in the header. */
  dataOffsets: [number, number];
  /** Absolute byte offset of the tensor's data in the file. */
  fileOffset: number;
  byteLength: number;
}

export interface SafetensorsHeader {
  path: string;
  /** Tensors in file order (ascending offset). */
  tensors: TensorInfo[];
  /** The "__metadata__" map ({} when absent). */
  metadata: Record<string, string>;
  /** Where tensor data starts: 8 + the header length. */
  dataStart: number;
}

/** A tensor converted to float32; `shape` [] is a scalar. */
export interface Float32Tensor {
  data: Float32Array;
  shape: number[];
}

/** A tensor in its stored element type (16-bit floats as their raw bit patterns). */
export type RawTensorData =
  | Float64Array
  | Float32Array
  | Uint16Array
  | BigInt64Array
  | BigUint64Array
  | Int32Array
  | Uint32Array
  | Int16Array
  | Int8Array
  | Uint8Array;

// The Rust implementation refuses headers above 100 MB; a larger length is a corrupt file.
const MAX_HEADER_BYTES = 100_000_000;
// fs.read takes at most 2 GiB per call; stay well below it.
const READ_CHUNK = 1 << 30;
// Scratch for converting 16/64-bit floats while reading (bounds load memory beyond the float32 copy).
const READ_CONVERT_BYTES = 8 << 20;

if (endianness() !== 'LE') {
  // Tensor bytes are little-endian and are viewed in place through typed arrays.
  throw new Error('dpo-ts safetensors I/O requires a little-endian machine');
}

function corrupt(path: string, problem: string): DpoError {
  return new DpoError(`${path}: not a valid safetensors file: ${problem}`);
}

function product(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Parse and validate a header; every check the Rust reader does, with one-line reasons. */
export function parseSafetensorsHeader(
  path: string,
  headerBytes: Uint8Array,
  fileSize: number,
): SafetensorsHeader {
  const dataStart = 8 + headerBytes.length;
  const text = new TextDecoder('utf-8', { fatal: false }).decode(headerBytes);
  if (!text.startsWith('{')) throw corrupt(path, 'header does not start with "{"');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw corrupt(path, `invalid header JSON (${(e as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw corrupt(path, 'header JSON is not an object');
  }
  const metadata: Record<string, string> = {};
  const tensors: TensorInfo[] = [];
  for (const [name, entry] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
        throw corrupt(path, '"__metadata__" is not an object');
      }
      for (const [k, v] of Object.entries(entry as Record<string, unknown>)) {
        if (typeof v !== 'string') throw corrupt(path, `"__metadata__.${k}" is not a string`);
        metadata[k] = v;
      }
      continue;
    }
    tensors.push(parseEntry(path, name, entry, dataStart));
  }
  checkCoverage(path, tensors, fileSize - dataStart);
  return { path, tensors, metadata, dataStart };
}

function parseEntry(path: string, name: string, entry: unknown, dataStart: number): TensorInfo {
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
    throw corrupt(path, `tensor "${name}": entry is not an object`);
  }
  const { dtype, shape, data_offsets: offsets } = entry as Record<string, unknown>;
  if (!isSafetensorsDtype(dtype)) {
    throw corrupt(path, `tensor "${name}": unknown dtype ${JSON.stringify(dtype)}`);
  }
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw corrupt(path, `tensor "${name}": shape ${JSON.stringify(shape)} is not a list of non-negative integers`);
  }
  if (
    !Array.isArray(offsets) ||
    offsets.length !== 2 ||
    !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) ||
    offsets[1] < offsets[0]
  ) {
    throw corrupt(path, `tensor "${name}": data_offsets ${JSON.stringify(offsets)} is not [begin, end] with begin <= end`);
  }
  const [begin, end] = offsets as [number, number];
  const expected = product(shape as number[]) * DTYPE_SIZES[dtype];
  if (end - begin !== expected) {
    throw corrupt(
      path,
      `tensor "${name}": data length ${end - begin} bytes does not equal ${dtype} size ${DTYPE_SIZES[dtype]} x ${product(shape as number[])} elements of shape [${(shape as number[]).join(', ')}] = ${expected}`,
    );
  }
  return {
    name,
    dtype,
    shape: [...(shape as number[])],
    dataOffsets: [begin, end],
    fileOffset: dataStart + begin,
    byteLength: end - begin,
  };
}

/** The data section must be tiled exactly: no gaps, no overlaps, nothing past the end. */
function checkCoverage(path: string, tensors: TensorInfo[], dataBytes: number): void {
  tensors.sort((a, b) => a.dataOffsets[0] - b.dataOffsets[0] || a.byteLength - b.byteLength);
  let cursor = 0;
  let previous = '';
  for (const t of tensors) {
    const [begin, end] = t.dataOffsets;
    if (begin < cursor) {
      throw corrupt(path, `tensor "${t.name}" data_offsets [${begin}, ${end}] overlap tensor "${previous}" (which ends at ${cursor})`);
    }
    if (begin > cursor) {
      throw corrupt(path, `data_offsets do not cover the data: bytes ${cursor}..${begin} before tensor "${t.name}" belong to no tensor`);
    }
    if (end > dataBytes) {
      throw corrupt(path, `tensor "${t.name}" data ends at offset ${end} but the file has only ${dataBytes} data bytes (truncated file)`);
    }
    cursor = end;
    previous = t.name;
  }
  if (cursor < dataBytes) {
    throw corrupt(path, `data_offsets do not cover the data: ${dataBytes - cursor} trailing bytes after offset ${cursor} belong to no tensor`);
  }
}

async function readHeaderFrom(handle: FileHandle, path: string): Promise<SafetensorsHeader> {
  const { size } = await handle.stat();
  if (size < 8) throw corrupt(path, `file is ${size} bytes, shorter than the 8-byte header length`);
  const lenBuf = Buffer.alloc(8);
  await readExactly(handle, lenBuf, 0, path, 'header length');
  const headerLen = lenBuf.readBigUInt64LE(0);
  if (headerLen > BigInt(size - 8)) {
    throw corrupt(path, `header length ${headerLen} is beyond the file size (${size} bytes)`);
  }
  if (headerLen > BigInt(MAX_HEADER_BYTES)) {
    throw corrupt(path, `header length ${headerLen} exceeds the 100 MB limit`);
  }
  const headerBytes = Buffer.alloc(Number(headerLen));
  await readExactly(handle, headerBytes, 8, path, 'header');
  return parseSafetensorsHeader(path, headerBytes, size);
}

async function readExactly(
  handle: FileHandle,
  target: Uint8Array,
  position: number,
  path: string,
  what: string,
): Promise<void> {
  let done = 0;
  while (done < target.length) {
    const len = Math.min(READ_CHUNK, target.length - done);
    const { bytesRead } = await handle.read(target, done, len, position + done);
    if (bytesRead === 0) {
      throw corrupt(path, `${what} is truncated: read ${done} of ${target.length} bytes at offset ${position}`);
    }
    done += bytesRead;
  }
}

/** The parsed, validated header of a .safetensors file (tensor data is not read). */
export async function readSafetensorsHeader(path: string): Promise<SafetensorsHeader> {
  const handle = await openOrThrow(path);
  try {
    return await readHeaderFrom(handle, path);
  } finally {
    await handle.close();
  }
}

async function openOrThrow(path: string): Promise<FileHandle> {
  try {
    return await open(path, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new DpoError(`${path}: cannot open safetensors file (${code ?? (e as Error).message})`);
  }
}

/**
 * An open .safetensors file whose tensors are read on demand. Call `close()` when done
 * (or use `readSafetensors` to read everything at once).
 */
export class SafetensorsFile {
  private readonly byName: Map<string, TensorInfo>;
  private scratch = new Uint8Array(0);

  private constructor(
    private readonly handle: FileHandle,
    readonly header: SafetensorsHeader,
  ) {
    this.byName = new Map(header.tensors.map((t) => [t.name, t]));
  }

  static async open(path: string): Promise<SafetensorsFile> {
    const handle = await openOrThrow(path);
    try {
      return new SafetensorsFile(handle, await readHeaderFrom(handle, path));
    } catch (e) {
      await handle.close();
      throw e;
    }
  }

  get path(): string {
    return this.header.path;
  }

  /** Tensor names in file order. */
  names(): string[] {
    return this.header.tensors.map((t) => t.name);
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  info(name: string): TensorInfo {
    const info = this.byName.get(name);
    if (!info) throw new DpoError(`${this.path}: no tensor named "${name}"`);
    return info;
  }

  /** The tensor in its stored element type. F16/BF16 come back as raw 16-bit patterns. */
  async readRaw(name: string): Promise<{ dtype: SafetensorsDtype; shape: number[]; data: RawTensorData }> {
    const info = this.info(name);
    const bytes = new Uint8Array(info.byteLength);
    await readExactly(this.handle, bytes, info.fileOffset, this.path, `tensor "${name}" data`);
    return { dtype: info.dtype, shape: [...info.shape], data: viewAs(info.dtype, bytes, this.path, name) };
  }

  /**
   * The tensor converted to float32. Integer tensors convert too (checkpoints carry a few, like
   * position ids) but must be exactly representable; anything else is an error naming the tensor.
   */
  async readFloat32(name: string): Promise<Float32Tensor> {
    const info = this.info(name);
    const count = info.byteLength / DTYPE_SIZES[info.dtype];
    if (info.dtype === 'F32') {
      // Read straight into the result's memory: no intermediate byte buffer.
      const data = new Float32Array(count);
      await readExactly(this.handle, new Uint8Array(data.buffer), info.fileOffset, this.path, `tensor "${name}" data`);
      return { data, shape: [...info.shape] };
    }
    if (info.dtype === 'F16' || info.dtype === 'BF16' || info.dtype === 'F64') {
      return { data: await this.readConverted(info), shape: [...info.shape] };
    }
    const raw = await this.readRaw(name);
    return { data: toFloat32(raw.dtype, raw.data, this.path, name), shape: raw.shape };
  }

  /**
   * A 16- or 64-bit float tensor converted to float32 through a bounded scratch buffer, so loading
   * a checkpoint needs the float32 weights plus at most READ_CONVERT_BYTES, never the raw tensor too.
   */
  private async readConverted(info: TensorInfo): Promise<Float32Array> {
    const size = DTYPE_SIZES[info.dtype];
    const count = info.byteLength / size;
    const out = new Float32Array(count);
    const chunk = Math.max(1, Math.min(count, Math.floor(READ_CONVERT_BYTES / size)));
    // One scratch buffer per open file, reused by every tensor: no garbage left for the GC to find.
    if (this.scratch.byteLength < chunk * size) this.scratch = new Uint8Array(Math.min(READ_CONVERT_BYTES, info.byteLength));
    const scratch = this.scratch;
    for (let start = 0; start < count; start += chunk) {
      const n = Math.min(chunk, count - start);
      const bytes = scratch.subarray(0, n * size);
      await readExactly(this.handle, bytes, info.fileOffset + start * size, this.path, `tensor "${info.name}" data`);
      const dst = out.subarray(start, start + n);
      if (info.dtype === 'F64') dst.set(new Float64Array(scratch.buffer, 0, n));
      else if (info.dtype === 'F16') f16BitsToF32(new Uint16Array(scratch.buffer, 0, n), dst);
      else bf16BitsToF32(new Uint16Array(scratch.buffer, 0, n), dst);
    }
    return out;
  }

  async close(): Promise<void> {
    await this.handle.close();
  }
}

function viewAs(dtype: SafetensorsDtype, bytes: Uint8Array, path: string, name: string): RawTensorData {
  const b = bytes.buffer;
  const n = bytes.byteLength / DTYPE_SIZES[dtype];
  switch (dtype) {
    case 'F64':
      return new Float64Array(b, 0, n);
    case 'F32':
      return new Float32Array(b, 0, n);
    case 'F16':
    case 'BF16':
    case 'U16':
      return new Uint16Array(b, 0, n);
    case 'I64':
      return new BigInt64Array(b, 0, n);
    case 'U64':
      return new BigUint64Array(b, 0, n);
    case 'I32':
      return new Int32Array(b, 0, n);
    case 'U32':
      return new Uint32Array(b, 0, n);
    case 'I16':
      return new Int16Array(b, 0, n);
    case 'I8':
      return new Int8Array(b, 0, n);
    case 'U8':
    case 'BOOL':
      return bytes;
    default:
      throw new DpoError(`${path}: tensor "${name}" has dtype ${dtype}, which dpo-ts cannot read`);
  }
}

/** Integer tensors as float32, refusing values float32 cannot hold exactly. */
function toFloat32(dtype: SafetensorsDtype, raw: RawTensorData, path: string, name: string): Float32Array {
  const out = new Float32Array(raw.length);
  for (let i = 0; i < raw.length; i++) {
    const v = Number(raw[i]);
    out[i] = v;
    if (out[i] !== v) {
      throw new DpoError(
        `${path}: tensor "${name}" (${dtype}) holds ${String(raw[i])} at index ${i}, which float32 cannot represent exactly`,
      );
    }
  }
  return out;
}

/** Read every tensor of a .safetensors file as float32, keyed by name as stored. */
export async function readSafetensors(path: string): Promise<Map<string, Float32Tensor>> {
  const file = await SafetensorsFile.open(path);
  try {
    const out = new Map<string, Float32Tensor>();
    for (const name of file.names()) out.set(name, await file.readFloat32(name));
    return out;
  } finally {
    await file.close();
  }
}
