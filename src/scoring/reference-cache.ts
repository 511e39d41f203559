/**
 * Reference log-probs, computed once before training and cached on disk. The cache key is a
 * digest of the reference weights and of the tokenized rows, so a later run on the same model
 * and data reuses them, and any change to either recomputes them. A cache file ends with the
 * SHA-256 of its values: a file damaged on disk (even at the right size) is recomputed, never used.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { collatePreferences } from '../data/collate.js';
import { writeBytesAtomic } from '../io/atomic.js';
import type { TokenizedPreference } from '../data/tokenize.js';
import type { RuntimeOptions } from '../engine/runtime.js';
import type { CausalLM } from '../models/types.js';
import type { ProgressReporter } from '../progress.js';
import { Scorer } from './scorer.js';

const CACHE_VERSION = 2;
const CHECKSUM_BYTES = 32;

export function defaultCacheDir(): string {
  return process.env.DPO_TS_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'dpo-ts');
}

/** SHA-256 over the weights' names, shapes and bytes, in name order. */
export function weightsDigest(weights: ReadonlyMap<string, Float32Array>, modelType: string): string {
  const h = createHash('sha256').update(`${modelType}\n`);
  for (const name of [...weights.keys()].sort()) {
    const w = weights.get(name) as Float32Array;
    h.update(`${name}:${w.length}\n`).update(new Uint8Array(w.buffer, w.byteOffset, w.byteLength));
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
  weights: ReadonlyMap<string, Float32Array>;
  shapes: ReadonlyMap<string, readonly number[]>;
  rows: readonly TokenizedPreference[];
  batchSize: number;
  padTokenId: number;
  /** Cache folder and the weights digest; omitted: no caching. */
  cache?: { dir: string; weightsDigest: string };
  onProgress?: (done: number, total: number) => void;
}

export interface ReferenceResult {
  /** [rows][K] row-major: reference log-prob of completion k of row i at i*K + k. */
  logps: Float64Array;
  fromCache: boolean;
  cacheFile?: string;
}

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
  for (let start = 0; start < o.rows.length; start += o.batchSize) {
    const rows = o.rows.slice(start, start + o.batchSize);
    const batch = collatePreferences(rows, { padTokenId: o.padTokenId });
    const { logps: seq } = await o.scorer.score(batch, o.weights, o.shapes);
    const B = rows.length;
    for (let i = 0; i < B; i++) for (let k = 0; k < K; k++) logps[(start + i) * K + k] = seq[k * B + i];
    o.onProgress?.(Math.min(start + o.batchSize, o.rows.length), o.rows.length);
  }
  if (file) {
    await mkdir(join(o.cache!.dir, 'reference'), { recursive: true });
    const values = new Uint8Array(logps.buffer);
    await writeBytesAtomic(file, Buffer.concat([values, sha256(values)]));
  }
  return { logps, fromCache: false, cacheFile: file };
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
}

/**
 * Reference log-probs of every split's rows under `ref` (one scorer for all splits), cached on
 * disk by weights and rows: [rows][K] per split, as {@link computeReferenceLogps}.
 */
export async function precomputeReferenceLogps(
  ref: { model: CausalLM; weights: ReadonlyMap<string, Float32Array> },
  splits: readonly (readonly TokenizedPreference[])[],
  o: PrecomputeOptions,
): Promise<Float64Array[]> {
  const shapes = new Map(ref.model.parameters().map((p) => [p.name, p.shape] as const));
  const scorer = await Scorer.create(ref.model, ref.model.parameters(), o.runtime, undefined, { packed: o.packed });
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
      });
      o.progress.stop();
      if (r.fromCache) o.progress.log(`reference log-probs: reused ${r.cacheFile}`);
      out.push(r.logps);
    }
  } finally {
    await scorer.release();
  }
  return out;
}
