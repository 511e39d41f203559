/**
 * Rotary position embeddings (RoPE), as transformers' modeling_rope_utils.py and the
 * apply_rotary_pos_emb / rotate_half / rotate_every_two helpers of the model files.
 *
 * The inverse frequencies are build-time constants; the angles, their cosines and sines are
 * computed in the graph from the position ids, once per forward, and shared by every layer.
 */
import { DpoError } from '../errors.js';
import type { Tensor } from '../engine/graph.js';
import * as op from '../engine/ops.js';

type Raw = Readonly<Record<string, unknown>>;

/**
 * `inv_freq[i] = 1 / base^(2i / dim)` for i in 0..dim/2-1, then `rope_scaling` applied
 * (`rope_type`, or the legacy `type` key): none/default, linear, llama3. Other types error.
 * Computed in float64.
 */
export function ropeInverseFrequencies(family: string, dim: number, base: number, scaling: unknown): number[] {
  if (!Number.isInteger(dim) || dim <= 0 || dim % 2 !== 0) throw new DpoError(`${family}: rotary dimension must be a positive even number, got ${dim}`);
  const invFreq = Array.from({ length: dim / 2 }, (_, i) => 1 / Math.pow(base, (2 * i) / dim));
  if (scaling == null) return invFreq;
  if (typeof scaling !== 'object' || Array.isArray(scaling)) {
    throw new DpoError(`${family}: config.json 'rope_scaling' must be an object or null, got ${JSON.stringify(scaling)}`);
  }
  const s = scaling as Raw;
  const type = s.rope_type ?? s.type ?? 'default';
  const factor = (key: string): number => {
    const v = s[key];
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      throw new DpoError(`${family}: rope_scaling '${String(type)}' needs a number '${key}', got ${JSON.stringify(v)}`);
    }
    return v;
  };
  switch (type) {
    case 'default':
      return invFreq;
    case 'linear': {
      const f = factor('factor');
      return invFreq.map((x) => x / f);
    }
    case 'llama3': {
      const f = factor('factor');
      const low = factor('low_freq_factor');
      const high = factor('high_freq_factor');
      const orig = factor('original_max_position_embeddings');
      const lowFreqWavelen = orig / low;
      const highFreqWavelen = orig / high;
      return invFreq.map((x) => {
        const wavelen = (2 * Math.PI) / x;
        if (wavelen < highFreqWavelen) return x;
        if (wavelen > lowFreqWavelen) return x / f;
        const smooth = (orig / wavelen - low) / (high - low);
        return ((1 - smooth) * x) / f + smooth * x;
      });
    }
    default:
      throw new DpoError(
        `${family}: rope_scaling type ${JSON.stringify(type)} is not supported (supported: default, linear, llama3)`,
      );
  }
}

/** How the rotated dims pair up: `half` pairs i with i + d/2 (neox, llama); `interleaved` pairs 2i with 2i+1 (gptj). */
export type RotaryStyle = 'half' | 'interleaved';

/**
 * cos/sin of the angles `position * inv_freq`, shaped to broadcast over [B, H, T, ...] heads.
 * In `half` style `sin` carries rotate_half's sign (its first half is negated), so the rotation
 * is `x * cos + cat(x2, x1) * sin` with no Neg per layer.
 */
export interface RotaryTables {
  style: RotaryStyle;
  /** Number of leading head dims that rotate; the rest pass through. */
  rotaryDim: number;
  cos: Tensor;
  sin: Tensor;
}

/**
 * The tables for `positions` (int64 [B or 1, T]), in `dtype`. `half`: cos/sin [B, 1, T, dim] =
 * cos/sin(cat(freqs, freqs)). `interleaved`: [B, 1, T, dim/2, 1], applied to x viewed as
 * [..., dim/2, 2].
 */
export function rotaryTables(positions: Tensor, invFreq: readonly number[], dtype: 'float32' | 'float64', style: RotaryStyle): RotaryTables {
  const g = positions.graph;
  const half = invFreq.length;
  // In the model's dtype, as transformers (float32); no float64 in float32 graphs (WebGPU has none).
  const inv = op.constant(g, dtype === 'float64' ? Float64Array.from(invFreq) : Float32Array.from(invFreq), dtype, [half]);
  const angles = op.mul(op.unsqueeze(op.cast(positions, dtype), -1), inv); // [B, T, dim/2]
  const c = op.cos(angles);
  const s = op.sin(angles);
  if (style === 'half') {
    return {
      style,
      rotaryDim: 2 * half,
      cos: op.unsqueeze(op.concat([c, c], -1), 1),
      sin: op.unsqueeze(op.concat([op.neg(s), s], -1), 1),
    };
  }
  return {
    style,
    rotaryDim: 2 * half,
    cos: op.unsqueeze(op.unsqueeze(c, 1), -1),
    sin: op.unsqueeze(op.unsqueeze(s, 1), -1),
  };
}

/**
 * Applies RoPE to the first `rotaryDim` dims of every head of x [B, H, T, Dh]; the remaining
 * dims pass through unchanged.
 */
export function applyRotary(x: Tensor, t: RotaryTables): Tensor {
  const headDim = x.shape[3] as number;
  const partial = t.rotaryDim < headDim;
  const [xr, xPass] = partial ? op.split(x, -1, [t.rotaryDim, headDim - t.rotaryDim]) : [x, undefined];
  const out = t.style === 'half' ? rotateHalfStyle(xr, t) : rotateEveryTwoStyle(xr, t);
  return xPass ? op.concat([out, xPass], -1) : out;
}

/** x * cos + rotate_half(x) * sin, rotate_half(x) = cat(-x2, x1) (the sign lives in `sin`). */
function rotateHalfStyle(x: Tensor, t: RotaryTables): Tensor {
  const h = t.rotaryDim / 2;
  const [x1, x2] = op.split(x, -1, [h, h]);
  return op.add(op.mul(x, t.cos), op.mul(op.concat([x2, x1], -1), t.sin));
}

/**
 * x * cos + rotate_every_two(x) * sin with cos/sin repeat-interleaved:
 * (x0, x1) -> (x0 cos - x1 sin, x1 cos + x0 sin) for each pair, computed on the [..., dim/2, 2] view.
 */
function rotateEveryTwoStyle(x: Tensor, t: RotaryTables): Tensor {
  const [b, h, n] = x.shape;
  const pairs = op.reshape(x, [b, h, n, t.rotaryDim / 2, 2]);
  const [x0, x1] = op.split(pairs, -1, [1, 1]);
  const even = op.sub(op.mul(x0, t.cos), op.mul(x1, t.sin));
  const odd = op.add(op.mul(x1, t.cos), op.mul(x0, t.sin));
  return op.reshape(op.concat([even, odd], -1), [b, h, n, t.rotaryDim]);
}
