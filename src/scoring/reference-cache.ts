/**
 * Reference log-probs, computed once before training and cached on disk. The cache key is a
 * digest of the reference weights and of the tokenized rows, so a later run on the same model
 * and data reuses them, and any change to either recomputes them. A cache file ends with the
 * SHA-256 of its values: a file damaged on disk (even at the right size) is recomputed, never used.
 */
import type { ParamData } from '../engine/train-step.js';
import type { FrozenStorage } from '../engine/frozen.js';
import { createHash } from 'node:crypto';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { collatePreferences } from '../data/collate.js';
import { writeBytesAtomic } from '../io/atomic.js';
import { defaultCacheDir } from '../engine/compile-cache.js';
import type { TokenizedPreference } from '../data/tokenize.js';
import type { RuntimeOptions } from '../engine/runtime.js';
import type { CausalLM } from '../models/types.js';
import type { ProgressReporter } from '../progress.js';
import type { PrefixSharing } from '../data/pack.js';
import { Scorer } from './scorer.js';

const CACHE_VERSION = 2;
const CHECKSUM_BYTES = 32;

// The project's one cache folder ($DPO_TS_CACHE or ~/.cache/dpo-ts), shared with the compile cache.
export { defaultCacheDir };

/** SHA-256 over the weights' names, shapes and bytes, in name order. */
export function weightsDigest(weights: ReadonlyMap<string, ParamData>, modelType: string): string {
  const h = createHash('sha256').update(`${modelType}\n`);
  for (const name of [...weights.keys()].sort()) {
    const w = weights.get(name) as ParamData;
    // float16 weights (frozenDtype) are tagged; float32 digests are those of earlier versions.
    h.update(`${name}:${w.length}${w instanceof Uint16Array ? ':f16' : ''}\n`).update(new Uint8Array(w.buffer, w.byteOffset, w.byteLength));
  }
  return h.digest('hex');
}

export function rowsDigest(rows: readonly TokenizedPreference[]): string {
  const h = createHash('sha256');
  for (const r of rows) h.update(JSON.stringify([r.promptIds, r.completionIds]));
  return h.digest('hex');
}

export interface ReferenceOptions {
  scorer: Scorer;
  weights: ReadonlyMap<string, ParamData>;
  shapes: ReadonlyMap<string, readonly number[]>;
  rows: readonly TokenizedPreference[];
  batchSize: number;
  padTokenId: number;
  /** Cache folder and the weights digest; omitted: no caching. */
  cache?: { dir: string; weightsDigest: string };
  onProgress?: (done: number, total: number) => void;
  /** Polled between batches: true stops the pass, keeping the rows done in a partial cache file. */
  stopRequested?: () => boolean;
}

export interface ReferenceResult {
  /** [rows][K] row-major: reference log-prob of completion k of row i at i*K + k. */
  logps: Float64Array;
  fromCache: boolean;
  cacheFile?: string;
  /** Stopped by `stopRequested`: only `rowsDone` rows are filled (kept in `cacheFile` when caching). */
  stopped?: boolean;
  rowsDone?: number;
  /** Rows taken from a partial cache an earlier, stopped or killed, pass left. */
  resumedRows?: number;
}

/** How often a pass writes the rows done so far (a SIGKILL mid-pass loses at most this much). */
const PARTIAL_EVERY_MS = 30_000;

export async function computeReferenceLogps(o: ReferenceOptions): Promise<ReferenceResult> {
  const K = o.rows[0]?.completionIds.length ?? 2;
  const key = o.cache ? createHash('sha256').update(`v${CACHE_VERSION}:${o.cache.weightsDigest}:${rowsDigest(o.rows)}`).digest('hex') : undefined;
  const file = o.cache && key ? join(o.cache.dir, 'reference', `${key}.f64`) : undefined;
  if (file) {
    const cached = await readFile(file).catch(() => undefined);
    const n = o.rows.length * K * 8;
    if (cached && cached.byteLength === n + CHECKSUM_BYTES && sha256(cached.subarray(0, n)).equals(cached.subarray(n))) {
      return { logps: new Float64Array(cached.buffer.slice(cached.byteOffset, cached.byteOffset + n)), fromCache: true, cacheFile: file };
    }
  }
  const logps = new Float64Array(o.rows.length * K);
  const partial = file ? `${file.slice(0, -'.f64'.length)}.partial.f64` : undefined;
  const resumedRows = partial ? await readPartial(partial, logps, K) : 0;
  if (resumedRows) o.onProgress?.(resumedRows, o.rows.length);
  let lastWrite = Date.now();
  for (let start = resumedRows; start < o.rows.length; start += o.batchSize) {
    if (o.stopRequested?.()) {
      if (partial) await writeCacheFile(partial, logps.subarray(0, start * K));
      return { logps, fromCache: false, cacheFile: partial, stopped: true, rowsDone: start, resumedRows };
    }
    const rows = o.rows.slice(start, start + o.batchSize);
    const batch = collatePreferences(rows, { padTokenId: o.padTokenId });
    const { logps: seq } = await o.scorer.score(batch, o.weights, o.shapes);
    const B = rows.length;
    for (let i = 0; i < B; i++) for (let k = 0; k < K; k++) logps[(start + i) * K + k] = seq[k * B + i];
    o.onProgress?.(Math.min(start + o.batchSize, o.rows.length), o.rows.length);
    if (partial && Date.now() - lastWrite > PARTIAL_EVERY_MS && start + B < o.rows.length) {
      await writeCacheFile(partial, logps.subarray(0, (start + B) * K));
      lastWrite = Date.now();
    }
  }
  if (file) {
    await writeCacheFile(file, logps);
    if (partial) await rm(partial, { force: true });
  }
  return { logps, fromCache: false, cacheFile: file, resumedRows };
}

/** Values followed by their SHA-256, written atomically (folders made as needed). */
async function writeCacheFile(path: string, values: Float64Array): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const bytes = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  await writeBytesAtomic(path, Buffer.concat([bytes, sha256(bytes)]));
}

/** Fills the start of `logps` from an intact partial cache file; resolves to the rows it held (0 when none). */
async function readPartial(path: string, logps: Float64Array, K: number): Promise<number> {
  const bytes = await readFile(path).catch(() => undefined);
  if (!bytes || bytes.byteLength <= CHECKSUM_BYTES) return 0;
  const n = bytes.byteLength - CHECKSUM_BYTES;
  if (n % (8 * K) !== 0 || n > logps.byteLength || !sha256(bytes.subarray(0, n)).equals(bytes.subarray(n))) return 0;
  new Uint8Array(logps.buffer, 0, n).set(bytes.subarray(0, n));
  return n / (8 * K);
}

function sha256(bytes: Uint8Array): Buffer {
  return createHash('sha256').update(bytes).digest();
}

export interface PrecomputeOptions {
  runtime: RuntimeOptions;
  batchSize: number;
  padTokenId: number;
  /** Cache folder (default {@link defaultCacheDir}). */
  cacheDir?: string;
  progress: ProgressReporter;
  /** Score padding-free (packed) batches. */
  packed?: boolean;
  /** Score each row's prompt once for its completions ('auto' or 'on', see ScoredLayout); not part of the cache key (same log-probs). */
  prefixSharing?: PrefixSharing;
  /** Polled between batches: true stops the pass (rows done are kept for the next run). */
  stopRequested?: () => boolean;
}

/**
 * Reference log-probs of every split's rows under `ref` (one scorer for all splits), cached on
 * disk by weights and rows: [rows][K] per split, as {@link computeReferenceLogps}. Undefined when
 * `stopRequested` stopped the pass (what was done is kept and logged).
 */
export async function precomputeReferenceLogps(
  ref: { model: CausalLM; weights: ReadonlyMap<string, ParamData> },
  splits: readonly (readonly TokenizedPreference[])[],
  o: PrecomputeOptions,
): Promise<Float64Array[] | undefined> {
  const shapes = new Map(ref.model.parameters().map((p) => [p.name, p.shape] as const));
  const scorer = await Scorer.create(ref.model, weightInputs(ref.model, ref.weights), o.runtime, undefined, { packed: o.packed, prefixSharing: o.prefixSharing });
  const digest = weightsDigest(ref.weights, ref.model.modelType);
  const out: Float64Array[] = [];
  try {
    for (const rows of splits) {
      o.progress.start('reference log-probs', rows.length);
      const r = await computeReferenceLogps({
        scorer,
        weights: ref.weights,
        shapes,
        rows,
        batchSize: o.batchSize,
        padTokenId: o.padTokenId,
        cache: { dir: o.cacheDir ?? defaultCacheDir(), weightsDigest: digest },
        onProgress: (d) => o.progress.update(d),
        stopRequested: o.stopRequested,
      });
      o.progress.stop();
      if (r.fromCache) o.progress.log(`reference log-probs: reused ${r.cacheFile}`);
      if (r.resumedRows) o.progress.log(`reference log-probs: continued from row ${r.resumedRows} of ${rows.length} (kept by an earlier run in ${r.cacheFile})`);
      if (r.stopped) {
        const kept = r.cacheFile ? `kept them in ${r.cacheFile}; the next run continues from there` : 'nothing is kept without a cache folder';
        o.progress.log(`stopped the reference pass after ${r.rowsDone} of ${rows.length} rows; ${kept}`);
        return undefined;
      }
      out.push(r.logps);
    }
  } finally {
    await scorer.release();
  }
  return out;
}

/** The model's parameters as Scorer inputs, each in the storage its array holds (float16 bits or float32). */
export function weightInputs(model: CausalLM, weights: ReadonlyMap<string, ParamData>): { name: string; shape: readonly number[]; storage: FrozenStorage }[] {
  return model.parameters().map((p) => ({ name: p.name, shape: p.shape, storage: weights.get(p.name) instanceof Uint16Array ? 'float16' : 'float32' }));
}

/** What a trainer resolves to when a stop request ended its reference pass: no step trained, interrupted. */
export function stoppedBeforeTraining(output: string): { output: string; steps: number; metrics: Record<string, number>; interrupted: true } {
  return { output, steps: 0, metrics: {}, interrupted: true };
}
