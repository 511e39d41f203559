/**
 * A model is never saved with values its stored dtype cannot hold: float32 weights that are
 * finite can still overflow to inf when rounded to float16 (beyond 65504) or bfloat16, and a model
 * saved so generates nothing but NaN. The check runs on every tensor before any file is written,
 * and names the first tensor that would not survive the cast.
 */
import { DpoError } from '../errors.js';
import type { FloatOutputDtype } from './dtypes.js';
import { torchDtypeName } from './save-dtype.js';
import type { Float32Tensor } from './safetensors.js';

/** The smallest magnitude that rounds (to nearest even) to inf in each dtype. */
const OVERFLOW_AT: Record<FloatOutputDtype, number> = {
  F32: Infinity,
  F16: 65520, // half max 65504; halfway to the next (65536) rounds up to inf
  BF16: 3.3961775292304345e38, // 0x7f7f8000: halfway above bfloat16's max 0x7f7f, rounds to inf
};
const LARGEST: Record<FloatOutputDtype, string> = { F32: '3.4e38', F16: '65504', BF16: '3.39e38' };

/** Throws a one-line DpoError when a tensor holds NaN, inf, or values that overflow `dtype`. */
export function checkStorable(entries: readonly (readonly [string, Float32Tensor])[], dtype: FloatOutputDtype): void {
  const limit = OVERFLOW_AT[dtype];
  for (const [name, t] of entries) {
    let bad = 0;
    let nonFinite = 0;
    let largest = 0;
    const d = t.data;
    for (let i = 0; i < d.length; i++) {
      const a = Math.abs(d[i]);
      if (a >= limit || a !== a) {
        bad++;
        if (!Number.isFinite(a)) nonFinite++;
        else if (a > largest) largest = a;
      }
    }
    if (bad === 0) continue;
    const type = torchDtypeName(dtype);
    const why =
      nonFinite === bad
        ? `${bad} of its ${d.length} values are NaN or infinite`
        : `${bad} of its ${d.length} values${nonFinite ? ' are NaN, infinite or' : ''} overflow ${type} (largest ${largest.toExponential(3)}; ${type} holds up to ${LARGEST[dtype]}) and would be stored as inf`;
    const hint = dtype === 'F32' || nonFinite === bad ? 'training diverged: lower the learning rate' : 'lower the learning rate, or save with --save-dtype float32';
    throw new DpoError(`refusing to save "${name}": ${why}; ${hint}`);
  }
}
