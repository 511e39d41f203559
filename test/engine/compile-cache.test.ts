/**
 * The compile cache (src/engine/compile-cache.ts): a DPO step whose session opens from ORT's
 * cached optimised model gives the same loss, gradient norm and new weights, bit for bit, as one
 * compiled afresh; a damaged entry is detected, never used, and rebuilt.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { collatePreferences } from '../../src/data/collate.js';
import type { TokenizedPreference } from '../../src/data/tokenize.js';
import { COMPILE_CACHE_ENV, compileCacheDir, defaultCacheDir, pruneCompileCache } from '../../src/engine/compile-cache.js';
import { Graph } from '../../src/engine/graph.js';
import { geluTanh } from '../../src/engine/nn.js';
import * as op from '../../src/engine/ops.js';
import { CompiledGraph, type HostTensor, type RuntimeOptions } from '../../src/engine/runtime.js';
import { TrainStep, type ParamSpec } from '../../src/engine/train-step.js';
import { createModel } from '../../src/models/registry.js';
import { scoredFeeds } from '../../src/scoring/sequence-logps.js';
import { buildDpoLoss } from '../../src/train/dpo/trainer.js';

const model = createModel({ model_type: 'gpt2', vocab_size: 13, n_embd: 8, n_layer: 2, n_head: 2, n_positions: 32 });

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

function specs(): ParamSpec[] {
  const rand = lcg(3);
  return model.parameters().map((p) => ({ name: p.name, shape: p.shape, data: Float32Array.from({ length: p.shape.reduce((a, b) => a * b, 1) }, () => (rand() - 0.5) * 0.4) }));
}

const rand = lcg(9);
const ids = (n: number): number[] => Array.from({ length: n }, () => Math.floor(rand() * 13));
const rows: TokenizedPreference[] = [0, 1, 2].map((i) => ({ promptIds: ids(2 + i), completionIds: [ids(3 + i), ids(5 - i)], origin: { file: 'test', line: i + 1 } }));
const batch = collatePreferences(rows, { padTokenId: 0 });
const feeds: Record<string, HostTensor> = {
  ...scoredFeeds(batch),
  completion_lengths: { data: Float32Array.from(batch.completionLengths), dims: [batch.numSequences] },
  ref_logps: { data: Float32Array.from({ length: batch.numSequences }, (_, i) => -3 - i / 7), dims: [batch.numSequences] },
};

/** Two AdamW steps from the same start: losses, grad norms, metrics and the new weights. */
async function twoSteps(runtime: RuntimeOptions): Promise<{ cache: string; values: number[]; weights: Float32Array[] }> {
  const ps = specs();
  const step = await TrainStep.create(ps, (g, p) => buildDpoLoss(g, model, p, { beta: 0.1, labelSmoothing: 0, lossTypes: ['sigmoid'] }, 2, false), { name: 'adamw', weightDecay: 0.01, maxGradNorm: 1 }, { threads: 1, ...runtime });
  const values: number[] = [];
  for (const lr of [1e-2, 5e-3]) {
    const r = await step.step(feeds, lr);
    values.push(r.loss, r.gradNorm, ...Object.values(r.outputs).flatMap((t) => Array.from(t.data as Float32Array, Number)));
  }
  const cache = step.compileStats.cache;
  await step.release();
  return { cache, values, weights: ps.map((p) => p.data as Float32Array) };
}

function expectBitwiseEqual(a: { values: number[]; weights: Float32Array[] }, b: { values: number[]; weights: Float32Array[] }): void {
  expect(b.values).toEqual(a.values);
  expect(b.values.every(Number.isFinite)).toBe(true);
  a.weights.forEach((w, i) => expect(Buffer.from(b.weights[i].buffer).equals(Buffer.from(w.buffer))).toBe(true));
}

const dirs: string[] = [];
function freshDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'dpo-ts-compile-cache-'));
  dirs.push(d);
  return d;
}
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** A small graph with fusable ops (MatMul + Add + tanh-GELU), compiled and run once. */
async function small(runtime: RuntimeOptions): Promise<{ cache: string; out: number[] }> {
  const g = new Graph('small');
  const x = g.input('x', 'float32', ['n', 4]);
  const w = g.input('w', 'float32', [4, 4]);
  const y = op.sum(geluTanh(op.add(op.matmul(x, w), x)), [1]);
  const c = await CompiledGraph.compile({ y }, { threads: 1, ...runtime });
  const r = await c.run({ x: { data: Float32Array.from({ length: 12 }, (_, i) => i / 7 - 0.8), dims: [3, 4] }, w: { data: Float32Array.from({ length: 16 }, (_, i) => Math.sin(i)), dims: [4, 4] } });
  await c.release();
  return { cache: c.stats.cache, out: Array.from(r.y.data as Float32Array) };
}

const entries = (dir: string): string[] => readdirSync(dir).filter((f) => f.endsWith('.ortopt'));

describe('compile cache', () => {
  it('a step from the cached optimised model equals an uncached one bit for bit', async () => {
    const dir = freshDir();
    const uncached = await twoSteps({ compileCache: false });
    expect(uncached.cache).toBe('off');
    const first = await twoSteps({ compileCache: dir });
    expect(first.cache).toBe('miss');
    expect(entries(dir)).toHaveLength(1);
    expect(readdirSync(dir).filter((f) => f.startsWith('.tmp-'))).toEqual([]);
    const second = await twoSteps({ compileCache: dir });
    expect(second.cache).toBe('hit');
    expectBitwiseEqual(uncached, first);
    expectBitwiseEqual(uncached, second);
  });

  it('the key covers the session options that shape the optimised graph', async () => {
    const dir = freshDir();
    expect((await small({ compileCache: dir })).cache).toBe('miss');
    expect((await small({ compileCache: dir, optimizationLevel: 'extended' })).cache).toBe('miss');
    expect((await small({ compileCache: dir, threads: 2 })).cache).toBe('miss');
    expect((await small({ compileCache: dir, optimizationLevel: 'extended' })).cache).toBe('hit');
    expect(entries(dir)).toHaveLength(3);
    // Not cached: unoptimised graphs (nothing to save) and a caller's own optimizedModelPath.
    expect((await small({ compileCache: dir, optimizationLevel: 'disabled' })).cache).toBe('off');
    expect((await small({ compileCache: dir, optimizedModelPath: join(dir, 'mine.onnx') })).cache).toBe('off');
  });

  it('a damaged entry is detected, not used, and rebuilt', async () => {
    const dir = freshDir();
    const reference = await small({ compileCache: false });
    expect((await small({ compileCache: dir })).cache).toBe('miss');
    const [name] = entries(dir);
    const file = join(dir, name);
    const good = readFileSync(file);
    const firstLine = good.indexOf(10) + 1;
    const headerEnd = good.indexOf(10, firstLine);
    const { key } = JSON.parse(good.subarray(firstLine, headerEnd).toString()) as { key: string };
    const junk = Buffer.from('this is not an ONNX model');
    const flipped = Buffer.from(good);
    flipped[flipped.length - 40] ^= 0xff;
    const damaged: [string, Buffer][] = [
      ['one flipped byte in the model', flipped],
      ['truncated', good.subarray(0, good.length >> 1)],
      ['no entry at all', Buffer.from('not an entry')],
      // Well formed (right length and digest), but a model ORT refuses.
      ['a model ORT refuses', Buffer.concat([good.subarray(0, firstLine), Buffer.from(`${JSON.stringify({ key, bytes: junk.length, sha256: createHash('sha256').update(junk).digest('hex') })}\n`), junk])],
    ];
    for (const [why, bad] of damaged) {
      writeFileSync(file, bad);
      const r = await small({ compileCache: dir });
      expect(r.cache, why).toBe('corrupt');
      expect(r.out, why).toEqual(reference.out);
      expect(readFileSync(file).equals(good), why).toBe(true); // rebuilt
      expect((await small({ compileCache: dir })).cache, why).toBe('hit');
    }
  });

  it('a folder that cannot be written only costs the speed-up', async () => {
    const dir = freshDir();
    const blocker = join(dir, 'file');
    writeFileSync(blocker, 'x');
    const r = await small({ compileCache: join(blocker, 'sub') });
    expect(r.cache).toBe('miss');
    expect(r.out).toEqual((await small({ compileCache: false })).out);
  });

  it('where the cache lives: the option, then $DPO_TS_COMPILE_CACHE; off unless asked for', () => {
    const saved = process.env[COMPILE_CACHE_ENV];
    try {
      delete process.env[COMPILE_CACHE_ENV];
      expect(compileCacheDir()).toBeUndefined();
      expect(compileCacheDir(true)).toBe(join(defaultCacheDir(), 'compiled'));
      expect(compileCacheDir(false)).toBeUndefined();
      expect(compileCacheDir('/x/y')).toBe('/x/y');
      process.env[COMPILE_CACHE_ENV] = 'on';
      expect(compileCacheDir()).toBe(join(defaultCacheDir(), 'compiled'));
      expect(compileCacheDir(false)).toBeUndefined();
      process.env[COMPILE_CACHE_ENV] = 'off';
      expect(compileCacheDir()).toBeUndefined();
      expect(compileCacheDir('/x/y')).toBe('/x/y');
      process.env[COMPILE_CACHE_ENV] = '/some/dir';
      expect(compileCacheDir()).toBe('/some/dir');
    } finally {
      if (saved === undefined) delete process.env[COMPILE_CACHE_ENV];
      else process.env[COMPILE_CACHE_ENV] = saved;
    }
  });

  it('keeps the most recently used entries', async () => {
    const dir = freshDir();
    for (let i = 0; i < 5; i++) {
      writeFileSync(join(dir, `${i}.ortopt`), 'x');
      utimesSync(join(dir, `${i}.ortopt`), 1000 + i, 1000 + i);
    }
    writeFileSync(join(dir, '.tmp-1-old.onnx'), 'x');
    utimesSync(join(dir, '.tmp-1-old.onnx'), 1000, 1000);
    await pruneCompileCache(dir, 3);
    expect(readdirSync(dir).sort()).toEqual(['2.ortopt', '3.ortopt', '4.ortopt']);
  });
});
