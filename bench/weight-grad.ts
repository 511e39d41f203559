/**
 * The weight-gradient GEMM of a linear layer, dW = xᵀ dy (x [rows, in], dy [rows, out]), in the
 * layouts ONNX Runtime can run it (issue 14, item 5): `npm run bench -- weight-grad [--threads
 * 2,1] [--runs 30] [--rows 2048] [--shapes 768x3072,3072x768,768x2304] [--optimized DIR]`.
 *
 *  - plain:     MatMul(xt, dy) with xt [in, rows] fed already transposed (the GEMM rate, same FLOPs)
 *  - transA:    MatMul(Transpose(x), dy), which ORT fuses into FusedMatMul(transA): what autodiff emits
 *  - explicit:  the transpose materialised (Transpose of x viewed as [rows, in, 1], which no fusion
 *               folds into the MatMul) followed by a plain MatMul
 *  - gemm:      ONNX Gemm(x, dy, transA=1)
 *  - outT:      dWᵀ = FusedMatMul(transA)(dy, x), the gradient in [out, in] layout
 *
 * Every variant runs in its own session; runs are interleaved (a, b, c, ... a, b, c) so all see
 * the same load, and each line reports the median and the minimum ms. `--optimized DIR` writes
 * each session's optimised model (to check what ORT fused).
 */
import { Graph, type Tensor } from '../src/engine/graph.js';
import * as op from '../src/engine/ops.js';
import { CompiledGraph, type HostTensor } from '../src/engine/runtime.js';

type Variant = 'plain' | 'transA' | 'explicit' | 'gemm' | 'outT';
const VARIANTS: Variant[] = ['plain', 'transA', 'explicit', 'gemm', 'outT'];

function randomArray(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = s / 4294967296 - 0.5;
  }
  return a;
}

function build(variant: Variant, rows: number, inF: number, outF: number): Record<string, Tensor> {
  const g = new Graph(`weight_grad_${variant}`);
  const dy = g.input('dy', 'float32', [rows, outF]);
  if (variant === 'plain') return { dw: op.matmul(g.input('xt', 'float32', [inF, rows]), dy) };
  const x = g.input('x', 'float32', [rows, inF]);
  switch (variant) {
    case 'transA':
      return { dw: op.matmul(op.transpose(x, [1, 0]), dy) };
    case 'explicit':
      return { dw: op.matmul(op.reshape(op.transpose(op.reshape(x, [rows, inF, 1]), [1, 2, 0]), [inF, rows]), dy) };
    case 'gemm':
      return { dw: g.addNode('Gemm', [x, dy], { transA: 1 }, [{ dtype: 'float32', shape: [inF, outF] }])[0] };
    case 'outT':
      return { dw: op.matmul(op.transpose(dy, [1, 0]), x) };
  }
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[(s.length >> 1) - 1] + s[s.length >> 1]) / 2;
};

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
}

export async function main(args: string[]): Promise<void> {
  const threadList = (flag(args, 'threads') ?? '2,1').split(',').map(Number);
  const runs = Number(flag(args, 'runs') ?? 30);
  const rows = Number(flag(args, 'rows') ?? 2048);
  const shapes = (flag(args, 'shapes') ?? '768x3072,3072x768,768x2304').split(',').map((s) => s.split('x').map(Number));
  const optimized = flag(args, 'optimized');
  for (const threads of threadList) {
    for (const [inF, outF] of shapes) {
      const feeds: Record<string, HostTensor> = {
        x: { data: randomArray(rows * inF, 1), dims: [rows, inF] },
        xt: { data: randomArray(rows * inF, 1), dims: [inF, rows] },
        dy: { data: randomArray(rows * outF, 2), dims: [rows, outF] },
      };
      const sessions = await Promise.all(
        VARIANTS.map(async (v) => {
          const outputs = build(v, rows, inF, outF);
          const path = optimized ? `${optimized}/${v}_${inF}x${outF}_t${threads}.onnx` : undefined;
          const c = await CompiledGraph.compile(outputs, { threads, ...(path ? { optimizedModelPath: path } : {}) });
          const names = new Set(Object.values(outputs).flatMap((t) => t.graph.inputs.map((i) => i.name)));
          const mine = Object.fromEntries(Object.entries(feeds).filter(([k]) => names.has(k)));
          const dims = v === 'outT' ? [outF, inF] : [inF, outF];
          const into = { dw: { data: new Float32Array(inF * outF), dims } };
          return { v, c, run: () => c.run(mine, into) };
        }),
      );
      for (let i = 0; i < 3; i++) for (const s of sessions) await s.run();
      const times = sessions.map(() => [] as number[]);
      for (let i = 0; i < runs; i++) {
        for (const [j, s] of sessions.entries()) {
          const t0 = performance.now();
          await s.run();
          times[j].push(performance.now() - t0);
        }
      }
      const flop = 2 * rows * inF * outF;
      sessions.forEach((s, j) => {
        const med = median(times[j]);
        const min = Math.min(...times[j]);
        console.log(
          JSON.stringify({ bench: 'weight_grad', variant: s.v, rows, in: inF, out: outF, threads, runs, median_ms: +med.toFixed(2), min_ms: +min.toFixed(2), gflops_median: +(flop / med / 1e6).toFixed(1), gflops_best: +(flop / min / 1e6).toFixed(1) }),
        );
      });
      await Promise.all(sessions.map((s) => s.c.release()));
    }
  }
}
