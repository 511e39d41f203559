/**
 * Safetensors dtype names, their sizes, and the 16-bit float conversions used when reading
 * half-precision checkpoints into Float32Arrays and writing them back.
 */

/** Byte size of every dtype the safetensors format defines. */
export const DTYPE_SIZES = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  F8_E4M3: 1,
  F8_E5M2: 1,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U64: 8,
  U32: 4,
  U16: 2,
  U8: 1,
  BOOL: 1,
} as const;

export type SafetensorsDtype = keyof typeof DTYPE_SIZES;

/** Dtypes `writeSafetensors` can produce from Float32 data. */
export type FloatOutputDtype = 'F32' | 'F16' | 'BF16';

export function isSafetensorsDtype(value: unknown): value is SafetensorsDtype {
  return typeof value === 'string' && Object.prototype.hasOwnProperty.call(DTYPE_SIZES, value);
}

// One shared scratch word: reinterpreting bits through a typed-array view is the fastest
// portable way to split a float into sign/exponent/mantissa in JavaScript.
const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** IEEE half bits -> float32 value (exact: every half is representable in float32). */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 0x1f) return frac === 0 ? sign * Infinity : NaN;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

// A 65536-entry table makes F16 decoding a single lookup per element; 256 KiB is paid once.
let halfTable: Float32Array | undefined;
function getHalfTable(): Float32Array {
  if (!halfTable) {
    halfTable = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) halfTable[i] = halfToFloat(i);
  }
  return halfTable;
}

export function f16BitsToF32(src: Uint16Array, dst: Float32Array): void {
  const table = getHalfTable();
  for (let i = 0; i < src.length; i++) dst[i] = table[src[i]];
}

export function bf16BitsToF32(src: Uint16Array, dst: Float32Array): void {
  const out = new Uint32Array(dst.buffer, dst.byteOffset, dst.length);
  for (let i = 0; i < src.length; i++) out[i] = src[i] << 16;
}

/** float32 -> IEEE half bits, round to nearest even (what torch's `.half()` does). */
export function floatToHalfBits(value: number): number {
  scratchF32[0] = value;
  const x = scratchU32[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // Subnormal half (or zero): shift the implicit-1 mantissa into place, then round.
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = mant & ((1 << shift) - 1);
    let m = mant >>> shift;
    if (rest > half || (rest === half && m & 1)) m++;
    return sign | m;
  }
  let m = mant >>> 13;
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && m & 1)) {
    m++;
    if (m === 0x400) {
      m = 0;
      e++;
      if (e >= 0x1f) return sign | 0x7c00;
    }
  }
  return sign | (e << 10) | m;
}

/** float32 -> bfloat16 bits, round to nearest even; NaN stays a quiet NaN. */
export function floatToBf16Bits(value: number): number {
  scratchF32[0] = value;
  const x = scratchU32[0];
  if ((x & 0x7f800000) === 0x7f800000 && x & 0x7fffff) return ((x >>> 16) | 0x40) & 0xffff;
  const rounded = x + 0x7fff + ((x >>> 16) & 1);
  return (rounded >>> 16) & 0xffff;
}

/**
 * float32 values -> IEEE half bits, round to nearest even (as {@link floatToHalfBits}, which
 * this equals bit for bit, at a fraction of its cost per element). Values beyond half's range
 * become infinities: the caller checks with {@link firstHalfOverflow}.
 */
export function floatsToHalfBits(src: Float32Array): Uint16Array {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const out = new Uint16Array(src.length);
  for (let i = 0; i < bits.length; i++) {
    const x = bits[i];
    const sign = (x >>> 16) & 0x8000;
    const abs = x & 0x7fffffff;
    if (abs >= 0x38800000 && abs < 0x477ff000) {
      // Normal half: drop 13 mantissa bits, round to nearest even (a carry into the exponent is right).
      const rebased = abs - 0x38000000;
      out[i] = sign | ((rebased + 0xfff + ((rebased >>> 13) & 1)) >>> 13);
    } else {
      out[i] = floatToHalfBits(src[i]);
    }
  }
  return out;
}

/** The index of the first value whose half is infinite or NaN while the value is not (-1 when none). */
export function firstHalfOverflow(src: Float32Array, half: Uint16Array): number {
  for (let i = 0; i < half.length; i++) {
    if ((half[i] & 0x7c00) === 0x7c00 && Number.isFinite(src[i])) return i;
  }
  return -1;
}
