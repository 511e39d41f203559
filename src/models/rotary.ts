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
 * The inverse frequencies of a RoPE, as transformers' ROPE_INIT_FUNCTIONS compute them:
 * - `static`: fixed `invFreq` (default, linear, llama3, yarn) and the factor cos/sin are scaled by
 *   (`attentionScaling`: 1 except for yarn);
 * - `dynamic`: NTK scaling whose base grows with the sequence: transformers recomputes inv_freq
 *   from `seq_len = max(position_ids) + 1` when it exceeds max_position_embeddings. We do that in
 *   the graph, once per forward, from this forward's position ids (transformers keeps the largest
 *   seq_len seen so far between calls; the first call and every generation step agree with us);
 * - `longrope`: `short` factors while `max(position_ids) + 1 <= originalMaxPositions`, `long` ones
 *   beyond, both scaled by `attentionScaling` (Phi-3 "su"/"longrope"), chosen per forward likewise.
 */
export type RopeFrequencies =
  | { type: 'static'; invFreq: number[]; attentionScaling: number }
  | { type: 'dynamic'; dim: number; base: number; factor: number; maxPositions: number }
  | { type: 'longrope'; short: number[]; long: number[]; originalMaxPositions: number; attentionScaling: number };

/** What a rope_scaling computation needs from config.json besides the rope_scaling object. */
export interface RopeContext {
  /** config.max_position_embeddings. */
  maxPositions: number;
  /** config.original_max_position_embeddings (Phi-3 keeps it at the top level). */
  originalMaxPositions?: number;
}

const SUPPORTED = 'default, linear, dynamic, yarn, longrope, llama3';

/**
 * `inv_freq[i] = 1 / base^(2i / dim)` for i in 0..dim/2-1, then `rope_scaling` applied
 * (`rope_type`, or the legacy `type` key; Phi-3's legacy "su" is longrope). Computed in float64.
 */
export function ropeFrequencies(family: string, dim: number, base: number, scaling: unknown, context: RopeContext): RopeFrequencies {
  if (!Number.isInteger(dim) || dim <= 0 || dim % 2 !== 0) throw new DpoError(`${family}: rotary dimension must be a positive even number, got ${dim}`);
  const exponents = Array.from({ length: dim / 2 }, (_, i) => (2 * i) / dim);
  const invFreq = exponents.map((e) => 1 / Math.pow(base, e));
  const plain = (f: number[], attentionScaling = 1): RopeFrequencies => ({ type: 'static', invFreq: f, attentionScaling });
  if (scaling == null) return plain(invFreq);
  if (typeof scaling !== 'object' || Array.isArray(scaling)) {
    throw new DpoError(`${family}: config.json 'rope_scaling' must be an object or null, got ${JSON.stringify(scaling)}`);
  }
  const s = scaling as Raw;
  const type = s.rope_type ?? s.type ?? 'default';
  const need = (key: string): number => {
    const v = s[key];
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      throw new DpoError(`${family}: rope_scaling '${String(type)}' needs a number '${key}', got ${JSON.stringify(v)}`);
    }
    return v;
  };
  const optional = (key: string): number | undefined => (s[key] == null ? undefined : need(key));
  switch (type) {
    case 'default':
      return plain(invFreq);
    case 'linear': {
      const f = need('factor');
      return plain(invFreq.map((x) => x / f));
    }
    case 'dynamic':
      return { type: 'dynamic', dim, base, factor: need('factor'), maxPositions: context.maxPositions };
    case 'llama3': {
      const f = need('factor');
      const low = need('low_freq_factor');
      const high = need('high_freq_factor');
      const orig = need('original_max_position_embeddings');
      const lowFreqWavelen = orig / low;
      const highFreqWavelen = orig / high;
      return plain(
        invFreq.map((x) => {
          const wavelen = (2 * Math.PI) / x;
          if (wavelen < highFreqWavelen) return x;
          if (wavelen > lowFreqWavelen) return x / f;
          const smooth = (orig / wavelen - low) / (high - low);
          return ((1 - smooth) * x) / f + smooth * x;
        }),
      );
    }
    case 'yarn':
      return yarn(s, exponents, dim, base, context, optional);
    case 'longrope':
    case 'su':
      return longrope(family, s, exponents, base, context, optional);
    default:
      throw new DpoError(`${family}: rope_scaling type ${JSON.stringify(type)} is not supported (supported: ${SUPPORTED})`);
  }
}

/** `ropeFrequencies` for RoPEs that need no run-time input: the inverse frequencies themselves. */
export function ropeInverseFrequencies(family: string, dim: number, base: number, scaling: unknown, context?: RopeContext): number[] {
  const rope = ropeFrequencies(family, dim, base, scaling, context ?? { maxPositions: 2048 });
  if (rope.type !== 'static' || rope.attentionScaling !== 1) throw new DpoError(`${family}: rope_scaling ${JSON.stringify(scaling)} is not a fixed frequency table`);
  return rope.invFreq;
}

/**
 * YaRN (_compute_yarn_parameters): frequencies blended between interpolated (/ factor) and
 * extrapolated ones by a linear ramp over the dims whose wavelength falls between beta_fast and
 * beta_slow rotations of the original context; cos/sin scaled by the attention factor
 * (0.1 ln(factor) + 1, or the mscale / mscale_all_dim ratio, or `attention_factor`).
 */
function yarn(
  s: Raw,
  exponents: number[],
  dim: number,
  base: number,
  context: RopeContext,
  optional: (key: string) => number | undefined,
): RopeFrequencies {
  const orig = optional('original_max_position_embeddings') ?? context.maxPositions;
  const factor = optional('factor') ?? context.maxPositions / orig;
  const mscale = (scale: number, m = 1): number => (scale <= 1 ? 1 : 0.1 * m * Math.log(scale) + 1);
  const ms = optional('mscale');
  const msAll = optional('mscale_all_dim');
  const attentionScaling = optional('attention_factor') ?? (ms && msAll ? mscale(factor, ms) / mscale(factor, msAll) : mscale(factor));
  const betaFast = optional('beta_fast') || 32;
  const betaSlow = optional('beta_slow') || 1;
  const truncate = s.truncate !== false;
  const correctionDim = (rotations: number): number => (dim * Math.log(orig / (rotations * 2 * Math.PI))) / (2 * Math.log(base));
  let low = correctionDim(betaFast);
  let high = correctionDim(betaSlow);
  if (truncate) [low, high] = [Math.floor(low), Math.ceil(high)];
  low = Math.max(low, 0);
  high = Math.min(high, dim - 1);
  if (low === high) high += 0.001; // transformers' guard against a zero-width ramp
  const invFreq = exponents.map((e, i) => {
    const posFreq = Math.pow(base, e);
    const extrapolation = 1 / posFreq;
    const interpolation = 1 / (factor * posFreq);
    const ramp = Math.min(Math.max((i - low) / (high - low), 0), 1);
    const extrapolationFactor = 1 - ramp;
    return interpolation * (1 - extrapolationFactor) + extrapolation * extrapolationFactor;
  });
  return { type: 'static', invFreq, attentionScaling };
}

/** LongRoPE (_compute_longrope_parameters + the per-forward short/long choice). */
function longrope(
  family: string,
  s: Raw,
  exponents: number[],
  base: number,
  context: RopeContext,
  optional: (key: string) => number | undefined,
): RopeFrequencies {
  const list = (key: string): number[] => {
    const v = s[key];
    if (!Array.isArray(v) || v.length !== exponents.length || !v.every((x) => typeof x === 'number' && Number.isFinite(x))) {
      throw new DpoError(`${family}: rope_scaling longrope needs '${key}' as a list of ${exponents.length} numbers (rotary dim / 2)`);
    }
    return v as number[];
  };
  const orig = context.originalMaxPositions ?? optional('original_max_position_embeddings') ?? context.maxPositions;
  const factor = optional('factor') ?? context.maxPositions / orig;
  const attentionScaling = optional('attention_factor') ?? (factor <= 1 ? 1 : Math.sqrt(1 + Math.log(factor) / Math.log(orig)));
  const freqs = (ext: number[]): number[] => exponents.map((e, i) => 1 / (ext[i] * Math.pow(base, e)));
  return { type: 'longrope', short: freqs(list('short_factor')), long: freqs(list('long_factor')), originalMaxPositions: orig, attentionScaling };
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
 * [..., dim/2, 2]. A bare list of inverse frequencies is a static RoPE without attention scaling.
 */
export function rotaryTables(
  positions: Tensor,
  rope: RopeFrequencies | readonly number[],
  dtype: 'float32' | 'float64',
  style: RotaryStyle,
): RotaryTables {
  const r: RopeFrequencies = isFrequencyList(rope) ? { type: 'static', invFreq: [...rope], attentionScaling: 1 } : rope;
  // Through int32: WebGPU has no int64 -> float Cast (it would run on the CPU); positions are small.
  const pos = op.cast(positions.dtype === 'int64' && dtype === 'float32' ? op.cast(positions, 'int32') : positions, dtype);
  const inv = inverseFrequencies(pos, r, dtype);
  const half = inv.shape[0] as number;
  const angles = op.mul(op.unsqueeze(pos, -1), inv); // [B, T, dim/2]
  const scaling = r.type === 'dynamic' ? 1 : r.attentionScaling;
  // transformers multiplies cos and sin by the attention scaling (yarn, longrope).
  const scaled = (x: Tensor): Tensor => (scaling === 1 ? x : op.mul(x, scaling));
  const c = scaled(op.cos(angles));
  const s = scaled(op.sin(angles));
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

function isFrequencyList(rope: RopeFrequencies | readonly number[]): rope is readonly number[] {
  return Array.isArray(rope);
}

/** [dim/2] inverse frequencies: a constant, or computed from `pos` (float [B or 1, T]) for dynamic/longrope. */
function inverseFrequencies(pos: Tensor, r: RopeFrequencies, dtype: 'float32' | 'float64'): Tensor {
  const g = pos.graph;
  // In the model's dtype, as transformers (float32); no float64 in float32 graphs (WebGPU has none).
  const vec = (xs: readonly number[]): Tensor =>
    op.constant(g, dtype === 'float64' ? Float64Array.from(xs) : Float32Array.from(xs), dtype, [xs.length]);
  if (r.type === 'static') return vec(r.invFreq);
  const seqLen = op.add(op.max(pos), 1); // max(position_ids) + 1, a scalar
  if (r.type === 'longrope') return op.where(op.greater(seqLen, r.originalMaxPositions), vec(r.long), vec(r.short));
  // dynamic NTK: base' = base * (factor * L / M - (factor - 1))^(dim / (dim - 2)), L = max(seq_len, M);
  // inv_freq = base'^(-2i/dim), computed as exp(-(2i/dim) ln base').
  const { dim, base, factor, maxPositions: m } = r;
  const len = op.maximum(seqLen, m);
  const growth = op.sub(op.mul(len, factor / m), factor - 1);
  const lnBase = op.add(op.mul(op.log(growth), dim / (dim - 2)), Math.log(base));
  const exponents = Array.from({ length: dim / 2 }, (_, i) => -(2 * i) / dim);
  return op.exp(op.mul(vec(exponents), lnBase));
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

/** Where a config.json keeps its RoPE settings. */
export interface RopeSettings {
  /** rope_theta (undefined: the family's default). */
  theta: number | undefined;
  /** The rope_scaling object (or null): rope_type / type, factor, ... */
  scaling: unknown;
  /** partial_rotary_factor (undefined: the family's default). */
  partialRotaryFactor: number | undefined;
}

/**
 * RoPE settings as transformers < 5 writes them (top-level `rope_theta`, `rope_scaling`,
 * `partial_rotary_factor`) or as transformers 5 does (`rope_parameters` holding rope_type,
 * rope_theta, factor, ...; per layer type for Gemma 3: `rope_parameters.full_attention` /
 * `.sliding_attention`). `layerType` picks the per-layer-type entry when there is one.
 */
export function ropeSettings(family: string, raw: Raw, layerType?: 'full_attention' | 'sliding_attention'): RopeSettings {
  const number = (v: unknown, key: string): number | undefined => {
    if (v == null) return undefined;
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`${family}: config.json '${key}' must be a number, got ${JSON.stringify(v)}`);
    return v;
  };
  const params = raw.rope_parameters;
  if (params != null && typeof params === 'object' && !Array.isArray(params)) {
    const all = params as Raw;
    const perType = layerType !== undefined ? all[layerType] : undefined;
    const p = perType != null && typeof perType === 'object' ? (perType as Raw) : all;
    const where = perType != null ? `rope_parameters.${layerType}` : 'rope_parameters';
    return {
      theta: number(p.rope_theta, `${where}.rope_theta`) ?? number(raw.rope_theta, 'rope_theta'),
      scaling: p,
      partialRotaryFactor: number(p.partial_rotary_factor, `${where}.partial_rotary_factor`) ?? number(raw.partial_rotary_factor, 'partial_rotary_factor'),
    };
  }
  return { theta: number(raw.rope_theta, 'rope_theta'), scaling: raw.rope_scaling, partialRotaryFactor: number(raw.partial_rotary_factor, 'partial_rotary_factor') };
}
