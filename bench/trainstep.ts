/**
 * What a TrainStep.step costs beyond its compute: one large parameter (default 20M floats) on a
 * tiny graph, so that the step is dominated by moving the parameter and optimizer state in and
 * out of ONNX Runtime. `npm run bench -- trainstep [--n 20000000] [--runs 10] [--threads 2] [--steps-per-run 2,4]`.
 *
 * Lines printed:
 *  - train_step: TrainStep.step (feeds wrap the caller's buffers; new params/state written into
 *    preallocated buffers).
 *  - same_graph_no_big_outputs: the same forward/backward/update computed by the same kind of
 *    graph, but with the updated tensors reduced to scalars in-graph, so nothing large leaves ORT:
 *    the compute floor.
 *  - overhead_ms = train_step - floor; bytes_out = bytes of the large outputs per step.
 *  - steps_per_run_<K>_ms: TrainStep.steps with K steps per session.run, per optimizer step
 *    (`--steps-per-run 2,4` by default): the parameters and state leave ORT once per K steps.
 */
import { grad } from '../src/engine/autodiff.js';
import { Graph, type Tensor } from '../src/engine/graph.js';
import * as op from '../src/engine/ops.js';
import { buildOptimizer, stepScalars, type OptimizerConfig } from '../src/engine/optim.js';
import { CompiledGraph, DEFAULT_OUTPUT_CHUNK_ELEMENTS, type HostTensor } from '../src/engine/runtime.js';
import { TrainStep } from '../src/engine/train-step.js';

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

async function timeRuns(fn: () => Promise<unknown>, warmup: number, runs: number): Promise<number> {
  for (let i = 0; i < warmup; i++) await fn();
  const ts: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn();
    ts.push(performance.now() - t0);
  }
  return median(ts);
}

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
}

/** loss = sum(p[0:16] * x): a tiny forward whose gradient is still dense over p. */
function tinyLoss(g: Graph, p: Tensor): Tensor {
  const x = g.input('x', 'float32', [16]);
  return op.sum(op.mul(op.slice(p, 0, 0, 16), x));
}

export async function main(args: string[]): Promise<void> {
  const n = Number(flag(args, 'n') ?? 20_000_000);
  const runs = Math.max(5, Number(flag(args, 'runs') ?? 10));
  const threads = Number(flag(args, 'threads') ?? 2);
  const chunkFlag = flag(args, 'chunk');
  const perRun = (flag(args, 'steps-per-run') ?? '2,4').split(',').map(Number);
  const rt = { threads, ...(chunkFlag !== undefined ? { outputChunkElements: Number(chunkFlag) } : {}) };
  const x: HostTensor = { data: Float32Array.from({ length: 16 }, (_, i) => i / 16), dims: [16] };
  const configs: [string, OptimizerConfig][] = [
    ['sgd', { name: 'sgd' }],
    ['adamw', { name: 'adamw', weightDecay: 0.01 }],
  ];
  for (const [label, cfg] of configs) {
    const step = await TrainStep.create(
      [{ name: 'p', shape: [n], data: new Float32Array(n).fill(0.5) }],
      (g, params) => ({ loss: tinyLoss(g, params.p) }),
      cfg,
      rt,
    );
    const stepMs = await timeRuns(() => step.step({ x }, 1e-3), 2, runs);
    // K steps per session.run (TrainStep.steps): ms per optimizer step.
    const perRunMs: Record<string, number> = {};
    for (const k of perRun.filter((k) => k > 1)) {
      await step.prepareSteps(k);
      const batches = Array.from({ length: k }, () => ({ x }));
      const lrs = Array.from({ length: k }, () => 1e-3);
      perRunMs[`steps_per_run_${k}_ms`] = Number(((await timeRuns(() => step.steps(batches, lrs), 2, runs)) / k).toFixed(2));
    }
    const slots = cfg.name === 'adamw' ? 2 : 0;
    await step.release();

    // The compute floor: the same update, reduced in-graph so that only scalars come out.
    const g = new Graph('floor');
    const p = g.input('p', 'float32', [n]);
    const loss = tinyLoss(g, p);
    const [gp] = grad(loss, [p]);
    const opt = buildOptimizer(g, [p], [gp], cfg);
    const outs: Record<string, Tensor> = { loss, s_p: op.sum(opt.newParams[0]) };
    for (const [k, t] of Object.entries(opt.newState[0])) outs[`s_${k}`] = op.sum(t);
    const floor = await CompiledGraph.compile(outs, rt);
    const scal = stepScalars(cfg, 1e-3, 1);
    const feeds: Record<string, HostTensor> = { x, p: { data: new Float32Array(n).fill(0.5), dims: [n] } };
    for (const [k, v] of Object.entries(scal)) feeds[k] = { data: Float32Array.of(v), dims: [] };
    for (const k of Object.keys(opt.newState[0])) feeds[`p.${k}`] = { data: new Float32Array(n), dims: [n] };
    const floorMs = await timeRuns(() => floor.run(feeds), 2, runs);
    await floor.release();

    // Moving bytes in JavaScript for scale: allocating a fresh buffer and copying into it.
    const src = new Float32Array(n).fill(1);
    const allocCopyMs = await timeRuns(async () => new Float32Array(n).set(src), 1, runs);

    console.log(
      JSON.stringify({
        bench: 'train_step_overhead',
        optimizer: label,
        n,
        threads,
        output_chunk: rt.outputChunkElements ?? DEFAULT_OUTPUT_CHUNK_ELEMENTS,
        outputs_floats: n * (1 + slots),
        train_step_ms: Number(stepMs.toFixed(2)),
        compute_floor_ms: Number(floorMs.toFixed(2)),
        overhead_ms: Number((stepMs - floorMs).toFixed(2)),
        js_alloc_copy_one_param_ms: Number(allocCopyMs.toFixed(2)),
        ...perRunMs,
      }),
    );
  }
}
