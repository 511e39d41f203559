/**
 * Picking the next token from a row of logits, as transformers' `generate` does: greedy argmax,
 * or sampling after its logits warpers in its order (temperature, then top-k, then top-p).
 *
 * Filters are thresholds on values, as transformers computes them: top-k keeps every token whose
 * score is >= the k-th largest score (ties at the boundary are all kept); top-p sorts the
 * probabilities ascending, removes the longest prefix whose cumulative sum is <= 1 - p and keeps
 * the rest (at least one token). Here the cut is applied as a probability threshold, so tokens
 * tied with the smallest kept one are kept too (transformers' unstable sort decides ties at
 * random; on real logits exact ties practically never occur).
 */
import { Rng } from '../data/rng.js';
import { DpoError } from '../errors.js';

export interface SamplingOptions {
  /** false: greedy (argmax); true: sample from the warped distribution. */
  doSample: boolean;
  /** Divides the logits before sampling (> 0); 1 leaves them unchanged. */
  temperature: number;
  /** Keep the k most likely tokens; 0 (or >= vocabulary) disables. */
  topK: number;
  /** Nucleus: keep the smallest set of most likely tokens with total probability >= p; 1 disables. */
  topP: number;
}

export function checkSamplingOptions(o: SamplingOptions): void {
  if (!(o.temperature > 0) || !Number.isFinite(o.temperature)) {
    throw new DpoError(`temperature must be a positive number, got ${o.temperature} (use greedy decoding instead of temperature 0)`);
  }
  if (!Number.isInteger(o.topK) || o.topK < 0) throw new DpoError(`top-k must be a non-negative integer, got ${o.topK}`);
  if (!(o.topP > 0 && o.topP <= 1)) throw new DpoError(`top-p must be in (0, 1], got ${o.topP}`);
}

/** Index of the largest value; the first one on ties (as torch.argmax). NaN never wins. */
export function argmax(logits: ArrayLike<number>, offset = 0, length = logits.length - offset): number {
  let best = 0;
  let bestValue = -Infinity;
  for (let i = 0; i < length; i++) {
    const v = logits[offset + i];
    if (v > bestValue) {
      bestValue = v;
      best = i;
    }
  }
  return best;
}

/**
 * Picks tokens from logit rows with the given options. Keeps scratch buffers of vocabulary size
 * (reused across calls), so one Sampler serves a whole generation; not reentrant.
 */
export class Sampler {
  private readonly scores: Float64Array;
  private readonly scratch: Float64Array;
  /** The kept tokens of the last call: ids and probabilities (normalised), `count` of them. */
  private readonly ids: Int32Array;
  private readonly probs: Float64Array;
  private count = 0;

  constructor(
    readonly vocabSize: number,
    readonly options: SamplingOptions,
  ) {
    if (options.doSample) checkSamplingOptions(options);
    this.scores = new Float64Array(vocabSize);
    this.scratch = new Float64Array(vocabSize);
    this.ids = new Int32Array(vocabSize);
    this.probs = new Float64Array(vocabSize);
  }

  /**
   * The next token for the logits at `logits[offset .. offset + vocabSize)`. `rng` is only used
   * when sampling.
   */
  next(logits: ArrayLike<number>, offset: number, rng: Rng): number {
    if (!this.options.doSample) return argmax(logits, offset, this.vocabSize);
    this.warp(logits, offset);
    // Inverse CDF over the kept tokens.
    const u = rng.nextFloat();
    let acc = 0;
    const n = this.count;
    for (let j = 0; j < n; j++) {
      acc += this.probs[j];
      if (u < acc) return this.ids[j];
    }
    return this.ids[n - 1]; // rounding: u landed above the last partial sum
  }

  /**
   * The sampling distribution after temperature, top-k and top-p as a dense array of vocabulary
   * size (removed tokens 0, the rest summing to 1). For tests and inspection.
   */
  warpedProbs(logits: ArrayLike<number>, offset = 0): Float64Array {
    this.warp(logits, offset);
    const dense = new Float64Array(this.vocabSize);
    for (let j = 0; j < this.count; j++) dense[this.ids[j]] = this.probs[j];
    return dense;
  }

  /** Fills ids/probs/count with the kept tokens and their renormalised probabilities. */
  private warp(logits: ArrayLike<number>, offset: number): void {
    const v = this.vocabSize;
    const { temperature, topK, topP } = this.options;
    const scores = this.scores;
    let max = -Infinity;
    for (let i = 0; i < v; i++) {
      const s = logits[offset + i] / temperature;
      scores[i] = s;
      if (s > max) max = s;
    }
    if (max === -Infinity || Number.isNaN(max)) throw new DpoError('sampling: every logit is -inf or NaN');
    // Top-k as a threshold on the scaled scores (ties with the k-th are kept, as transformers).
    const minKept = topK > 0 && topK < v ? kthLargest(scores, topK, this.scratch) : -Infinity;
    const ids = this.ids;
    const probs = this.probs;
    let n = 0;
    let total = 0;
    for (let i = 0; i < v; i++) {
      const s = scores[i];
      if (s >= minKept && s > -Infinity) {
        const e = Math.exp(s - max);
        ids[n] = i;
        probs[n++] = e;
        total += e;
      }
    }
    for (let j = 0; j < n; j++) probs[j] /= total;
    if (topP < 1 && n > 1) {
      // Remove the ascending prefix whose cumulative probability stays <= 1 - p. Tokens below
      // (1 - p) / n carry at most 1 - p together and come first in ascending order, so they
      // are removed without sorting (most of a trained model's vocabulary, usually).
      const floor = (1 - topP) / n;
      const sorted = this.scratch;
      let m = 0;
      let below = 0;
      for (let j = 0; j < n; j++) {
        if (probs[j] < floor) below += probs[j];
        else sorted[m++] = probs[j];
      }
      const view = sorted.subarray(0, m).sort();
      let cum = below;
      let cut = m - 1;
      for (let j = 0; j < m - 1; j++) {
        cum += view[j];
        if (cum > 1 - topP) {
          cut = j;
          break;
        }
      }
      const threshold = view[cut];
      let kept = 0;
      total = 0;
      for (let j = 0; j < n; j++) {
        if (probs[j] >= threshold) {
          ids[kept] = ids[j];
          probs[kept++] = probs[j];
          total += probs[j];
        }
      }
      n = kept;
      for (let j = 0; j < n; j++) probs[j] /= total;
    }
    this.count = n;
  }
}

/** The k-th largest of `values` (k >= 1), using `scratch` (same length) as work space. */
function kthLargest(values: Float64Array, k: number, scratch: Float64Array): number {
  return k <= 1024 ? kthLargestHeap(values, k, scratch) : kthLargestSelect(values, k, scratch);
}

/**
 * One pass with a min-heap of the k largest so far (in `heap[0..k)`): after the first few
 * hundred values almost every value is below the heap's minimum and costs one comparison.
 */
function kthLargestHeap(values: Float64Array, k: number, heap: Float64Array): number {
  const n = values.length;
  for (let i = 0; i < k; i++) heap[i] = values[i];
  for (let i = (k >> 1) - 1; i >= 0; i--) siftDown(heap, i, k);
  for (let i = k; i < n; i++) {
    const v = values[i];
    if (v > heap[0]) {
      heap[0] = v;
      siftDown(heap, 0, k);
    }
  }
  return heap[0];
}

function siftDown(heap: Float64Array, at: number, size: number): void {
  let i = at;
  const v = heap[i];
  for (;;) {
    const l = 2 * i + 1;
    if (l >= size) break;
    const r = l + 1;
    const c = r < size && heap[r] < heap[l] ? r : l;
    if (heap[c] >= v) break;
    heap[i] = heap[c];
    i = c;
  }
  heap[i] = v;
}

/** Quickselect for large k. */
function kthLargestSelect(values: Float64Array, k: number, scratch: Float64Array): number {
  scratch.set(values);
  // Quickselect for the (n-k)-th smallest.
  const n = values.length;
  const target = n - k;
  let lo = 0;
  let hi = n - 1;
  const a = scratch;
  while (lo < hi) {
    const pivot = a[(lo + hi) >>> 1];
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i] < pivot) i++;
      while (a[j] > pivot) j--;
      if (i <= j) {
        const t = a[i];
        a[i] = a[j];
        a[j] = t;
        i++;
        j--;
      }
    }
    if (target <= j) hi = j;
    else if (target >= i) lo = i;
    else break;
  }
  return a[target];
}
