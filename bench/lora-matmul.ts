/**
 * The rate of LoRA's adapter products (issue 23, item 6): `npm run bench -- lora-matmul [--rows
 * 2048] [--dim 1024] [--r 16] [--runs 15] [--threads 2]`.
 *
 * One graph per variant, each the forward and backward (gradients of A, B and x) of the adapters
 * of three projections that read the same input x [rows, dim] (q, k, v), summed into a loss:
 *  - separate: three adapters, y_i = (x A_iᵀ) B_iᵀ — what applyLora builds today;
 *  - fusedA:   one product x [A_q; A_k; A_v]ᵀ (N = 3r instead of r), sliced into the three B's;
 *  - dense:    the frozen product x Wᵀ with W [dim, dim] and its input gradient (the rate LoRA's
 *              products are compared with).
 * Runs are interleaved so all variants see the same load; each line gives the median ms and
 * GFLOP/s (2·m·k·n per product, counted for forward and backward).
 */
import { grad } from '../src/engine/autodiff.js';
import { Graph, type Tensor } from '../src/engine/graph.js';
import * as op from '../src/engine/ops.js';
import { CompiledGraph, type HostTensor } from '../src/engine/runtime.js';
import { flag, median, round } from './dpo.js';

type Variant = 'separate' | 'fusedA' | 'dense';

function random(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296 - 0.5) * 0.1);
}

function build(v: Variant, rows: number, dim: number, r: number): { outputs: Record<string, Tensor>; flops: number } {
  const g = new Graph(`lora_${v}`);
  const x = g.input('x', 'float32', [rows, dim]);
  if (v === 'dense') {
    const w = g.input('w', 'float32', [dim, dim]);
    g.freeze(w);
    const y = op.matmul(x, op.transpose(w, [1, 0]));
    const [dx] = grad(op.sum(op.mul(y, y)), [x]);
    return { outputs: { dx }, flops: 2 * 2 * rows * dim * dim };
  }
  const as = [0, 1, 2].map((i) => g.input(`a${i}`, 'float32', [r, dim]));
  const bs = [0, 1, 2].map((i) => g.input(`b${i}`, 'float32', [dim, r]));
  let ys: Tensor[];
  if (v === 'separate') ys = as.map((a, i) => op.matmul(op.matmul(x, op.transpose(a, [1, 0])), op.transpose(bs[i], [1, 0])));
  else {
    const xa = op.matmul(x, op.transpose(op.concat(as, 0), [1, 0]));
    ys = bs.map((b, i) => op.matmul(op.slice(xa, 1, i * r, (i + 1) * r), op.transpose(b, [1, 0])));
  }
  const loss = ys.map((y) => op.sum(op.mul(y, y))).reduce((a, b) => op.add(a, b));
  const grads = grad(loss, [x, ...as, ...bs]);
  // Per adapter: forward 2 products, backward dB, d(xa), dA, dx: 6 products of rows·dim·r.
  return { outputs: Object.fromEntries(grads.map((t, i) => [`g${i}`, t])), flops: 3 * 6 * 2 * rows * dim * r };
}

export async function main(args: string[]): Promise<void> {
  const rows = Number(flag(args, 'rows') ?? 2048);
  const dim = Number(flag(args, 'dim') ?? 1024);
  const r = Number(flag(args, 'r') ?? 16);
  const runs = Number(flag(args, 'runs') ?? 15);
  const threads = Number(flag(args, 'threads') ?? 2);
  const variants: Variant[] = ['separate', 'fusedA', 'dense'];
  const graphs = await Promise.all(variants.map(async (v) => {
    const { outputs, flops } = build(v, rows, dim, r);
    return { v, flops, compiled: await CompiledGraph.compile(outputs, { threads }) };
  }));
  const feeds: Record<string, HostTensor> = { x: { data: random(rows * dim, 1), dims: [rows, dim] }, w: { data: random(dim * dim, 2), dims: [dim, dim] } };
  for (let i = 0; i < 3; i++) {
    feeds[`a${i}`] = { data: random(r * dim, 3 + i), dims: [r, dim] };
    feeds[`b${i}`] = { data: random(dim * r, 6 + i), dims: [dim, r] };
  }
  const times = new Map<Variant, number[]>(variants.map((v) => [v, []]));
  for (let k = 0; k < runs + 2; k++) {
    for (const { v, compiled } of graphs) {
      const names = v === 'dense' ? ['x', 'w'] : ['x', 'a0', 'a1', 'a2', 'b0', 'b1', 'b2'];
      const t0 = performance.now();
      await compiled.run(Object.fromEntries(names.map((n) => [n, feeds[n]])));
      if (k >= 2) (times.get(v) as number[]).push(performance.now() - t0);
    }
  }
  for (const { v, flops, compiled } of graphs) {
    const ms = median(times.get(v) as number[]);
    console.log(JSON.stringify({ bench: 'lora_matmul', variant: v, rows, dim, r, threads, ms: round(ms, 2), gflops: round(flops / ms / 1e6, 1), min_ms: round(Math.min(...(times.get(v) as number[])), 2) }));
    await compiled.release();
  }
}
