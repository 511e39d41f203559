/**
 * Engine benchmarks: a plain GEMM through our runtime, and a GPT-2-sized MLP block forward +
 * backward built with the engine. `npm run bench -- engine [--threads 2,1] [--runs 10]
 * [--chunk N (RuntimeOptions.outputChunkElements)] [--profile DIR]`. One JSON object per line.
 * The gemm and MLP runs are interleaved so that both see the same machine load.
 */
import { grad } from '../src/engine/autodiff.js';
import { Graph, type Tensor } from '../src/engine/graph.js';
import * as nn from '../src/engine/nn.js';
import * as op from '../src/engine/ops.js';
import { CompiledGraph, type HostTensor, type RuntimeOptions } from '../src/engine/runtime.js';

function randomArray(n: number, seed: number, scale = 1): Float32Array {
  let s = seed >>> 0;
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = (s / 4294967296 - 0.5) * 2 * scale;
  }
  return a;
}

const host = (data: Float32Array, dims: number[]): HostTensor => ({ data, dims });

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Preallocated output buffers for every output of `c`, given its output shapes. */
function outputsInto(shapes: Record<string, number[]>): Record<string, HostTensor> {
  const r: Record<string, HostTensor> = {};
  for (const [k, dims] of Object.entries(shapes)) r[k] = host(new Float32Array(dims.reduce((p, d) => p * d, 1)), dims);
  return r;
}

const round = (x: number, digits = 2): number => Number(x.toFixed(digits));

interface Prepared {
  run: () => Promise<unknown>;
  release: () => Promise<void>;
}

export async function prepareGemm(m: number, k: number, n: number, threads: number, rt: RuntimeOptions = {}): Promise<Prepared> {
  const g = new Graph('gemm');
  const a = g.input('a', 'float32', [m, k]);
  const b = g.input('b', 'float32', [k, n]);
  const c = await CompiledGraph.compile({ c: op.matmul(a, b) }, { threads, ...rt });
  const feeds = { a: host(randomArray(m * k, 1), [m, k]), b: host(randomArray(k * n, 2), [k, n]) };
  const into = outputsInto({ c: [m, n] });
  return { run: () => c.run(feeds, into), release: () => c.release() };
}

/** y = gelu_tanh(x W1 + b1) W2 + b2; loss = sum(y * r); outputs the gradients of W1, b1, W2, b2, x. */
export function buildMlp(g: Graph, d: number, hidden: number, T: number | string = 'T'): Record<string, Tensor> {
  const x = g.input('x', 'float32', [T, d]);
  const w1 = g.input('w1', 'float32', [d, hidden]);
  const b1 = g.input('b1', 'float32', [hidden]);
  const w2 = g.input('w2', 'float32', [hidden, d]);
  const b2 = g.input('b2', 'float32', [d]);
  const r = g.input('r', 'float32', [T, d]);
  const y = nn.linear(nn.geluTanh(nn.linear(x, w1, b1)), w2, b2);
  const loss = op.sum(op.mul(y, r));
  const [gw1, gb1, gw2, gb2, gx] = grad(loss, [w1, b1, w2, b2, x]);
  return { loss, gw1, gb1, gw2, gb2, gx };
}

export async function prepareMlp(T: number, d: number, hidden: number, threads: number, rt: RuntimeOptions = {}): Promise<Prepared> {
  const g = new Graph('mlp_fwd_bwd');
  const c = await CompiledGraph.compile(buildMlp(g, d, hidden), { threads, ...rt });
  const feeds = {
    x: host(randomArray(T * d, 3), [T, d]),
    w1: host(randomArray(d * hidden, 4, 0.05), [d, hidden]),
    b1: host(randomArray(hidden, 5, 0.05), [hidden]),
    w2: host(randomArray(hidden * d, 6, 0.05), [hidden, d]),
    b2: host(randomArray(d, 7, 0.05), [d]),
    r: host(randomArray(T * d, 8), [T, d]),
  };
  const into = outputsInto({ loss: [], gw1: [d, hidden], gb1: [hidden], gw2: [hidden, d], gb2: [d], gx: [T, d] });
  return { run: () => c.run(feeds, into), release: () => c.release() };
}

/**
 * Times prepared benchmarks with their runs interleaved (a, b, a, b, ...) so that both see the
 * same machine load; returns the median ms of each.
 */
async function timeInterleaved(benches: Prepared[], warmup: number, runs: number): Promise<number[]> {
  for (let i = 0; i < warmup; i++) for (const b of benches) await b.run();
  const times = benches.map(() => [] as number[]);
  for (let i = 0; i < runs; i++) {
    for (const [j, b] of benches.entries()) {
      const t0 = performance.now();
      await b.run();
      times[j].push(performance.now() - t0);
    }
  }
  return times.map(median);
}

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
}

export async function main(args: string[]): Promise<void> {
  const threadList = (flag(args, 'threads') ?? '2,1').split(',').map(Number);
  const runs = Math.max(10, Number(flag(args, 'runs') ?? 10));
  const profileDir = flag(args, 'profile');
  const chunk = flag(args, 'chunk');
  const [T, d, hidden] = [512, 768, 3072];
  for (const threads of threadList) {
    const rt = (kind: string): RuntimeOptions => ({
      ...(chunk !== undefined ? { outputChunkElements: Number(chunk) } : {}),
      ...(profileDir ? { profilePrefix: `${profileDir}/${kind}_t${threads}`, optimizedModelPath: `${profileDir}/${kind}_t${threads}.opt.onnx` } : {}),
    });
    const gemm = await prepareGemm(T, d, hidden, threads, rt('gemm'));
    const mlp = await prepareMlp(T, d, hidden, threads, rt('mlp'));
    const [gemmMs, mlpMs] = await timeInterleaved([gemm, mlp], 3, runs);
    await gemm.release();
    await mlp.release();
    const gemmGflops = (2 * T * d * hidden) / gemmMs / 1e6;
    const mlpGflops = (12 * T * d * hidden) / mlpMs / 1e6;
    console.log(JSON.stringify({ bench: 'gemm', m: T, k: d, n: hidden, threads, ms: round(gemmMs), gflops: round(gemmGflops, 1) }));
    console.log(JSON.stringify({ bench: 'mlp_fwd_bwd', T, d, hidden, threads, ms_per_step: round(mlpMs), gflops: round(mlpGflops, 1), vs_gemm: round(mlpGflops / gemmGflops, 3) }));
  }
}
