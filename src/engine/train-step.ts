/**
 * A compiled training step in two graphs:
 *  - the gradient graph runs forward, loss and backward on one micro-batch and adds its
 *    gradients, scaled by 1/micro-batches, into accumulator buffers;
 *  - the apply graph clips the accumulated gradients and runs the optimizer update.
 * Gradient accumulation is therefore exact by construction: k micro-batches of size b give the
 * update of one batch of size k*b (for losses that are means over rows).
 *
 * Buffers are written in place: the apply graph writes new parameters and optimizer state into
 * the very arrays it reads them from, and the gradient graph writes accumulators into the
 * arrays it reads. That is safe because in both graphs the only readers of those inputs are
 * the element-wise ops that compute their new values (same index in, same index out), and the
 * gradient graph never outputs a parameter. Memory: parameters + gradient accumulators +
 * optimizer state, as in PyTorch.
 *
 * What a step costs beyond its compute (verified on onnxruntime-node 1.30, linux-x64; see
 * test/engine/runtime.test.ts and `npm run bench -- trainstep`):
 *  - feeds are zero-copy: the binding wraps each Float32Array's memory in an OrtValue (a graph
 *    reading 16 values of a 20M-float input runs in ~0.1 ms);
 *  - preallocated outputs are written in place (the buffer's contents change, and ORT computes
 *    straight into it), BUT the 1.30 binding then also copies every output into a freshly
 *    allocated ArrayBuffer and returns that copy (writing into the returned array does not
 *    touch ours). There is no way to decline it, so every step pays, per output byte, one
 *    allocation + memcpy + later GC: here grads (gradient graph) + params + optimizer state
 *    (apply graph). CompiledGraph drops the copies and returns the caller's buffers.
 *  - fresh buffers above glibc's mmap threshold are new pages each time, and page faults on the
 *    2-core VM cost far more than the copy; CompiledGraph therefore fetches static outputs of
 *    32 MiB or more in 1 MiB chunks (RuntimeOptions.outputChunkElements), which mostly reuses
 *    heap memory.
 *    Measured for one 20M-float parameter on a tiny graph (2 threads, machine under load, so
 *    ±50%): SGD 1.5-2.7 s/step unchunked vs 0.6-0.8 s chunked, compute floor 0.04-0.11 s; AdamW
 *    4.8-5.6 s vs 1.1-2.6 s, floor 0.3-0.6 s. Upstream onnxruntime's newer binding wraps outputs
 *    in external ArrayBuffers without a copy; upgrading removes most of this overhead.
 */
import { grad } from './autodiff.js';
import { Graph, type Tensor } from './graph.js';
import * as op from './ops.js';
import { buildOptimizer, stateSlots, stepScalars, type OptimizerConfig } from './optim.js';
import { CompiledGraph, type HostTensor, type RuntimeOptions } from './runtime.js';

export interface ParamSpec {
  name: string;
  shape: readonly number[];
  data: Float32Array;
  /** Frozen parameters are fed but not updated (no gradient, no optimizer state). */
  trainable?: boolean;
}

export interface LossBuild {
  loss: Tensor;
  /** Extra outputs returned for every micro-batch (metrics). */
  outputs?: Record<string, Tensor>;
}

export interface StepResult {
  /** Mean loss over the micro-batches. */
  loss: number;
  /** Global gradient norm before clipping. */
  gradNorm: number;
  /** Extra outputs of the last micro-batch. */
  outputs: Record<string, HostTensor>;
  /** Extra outputs of every micro-batch, in order. */
  microOutputs: Record<string, HostTensor>[];
}

const GRAD_SCALE = 'grad_scale';
const accName = (p: string): string => `${p}.grad`;

export class TrainStep {
  private readonly params: Float32Array[];
  private readonly grads: Float32Array[];
  private readonly state: Record<string, Float32Array>[];
  private stepCount = 0;

  private constructor(
    private readonly gradGraph: CompiledGraph,
    private readonly applyGraph: CompiledGraph,
    private readonly specs: readonly ParamSpec[],
    private readonly trainable: readonly number[],
    private readonly config: OptimizerConfig,
    private readonly extraOutputs: readonly string[],
  ) {
    this.params = specs.map((s) => s.data);
    this.grads = trainable.map((i) => new Float32Array(specs[i].data.length));
    const slots = stateSlots(config);
    this.state = trainable.map((i) => Object.fromEntries(slots.map((k) => [k, new Float32Array(specs[i].data.length)])));
  }

  /**
   * Builds and compiles the step. `build` receives the parameter tensors (graph inputs named as
   * the specs) and declares its own data inputs on `g`. The caller's `data` arrays become the
   * live parameter buffers and are updated in place.
   */
  static async create(
    specs: readonly ParamSpec[],
    build: (g: Graph, params: Record<string, Tensor>) => LossBuild,
    config: OptimizerConfig,
    runtime: RuntimeOptions = {},
  ): Promise<TrainStep> {
    const trainable = specs.map((s, i) => (s.trainable === false ? -1 : i)).filter((i) => i >= 0);
    if (trainable.length === 0) throw new Error('TrainStep: no trainable parameters');

    const g = new Graph('train_grad');
    const params: Record<string, Tensor> = {};
    for (const s of specs) params[s.name] = g.input(s.name, 'float32', s.shape);
    const { loss, outputs = {} } = build(g, params);
    const grads = grad(loss, trainable.map((i) => params[specs[i].name]));
    const scale = g.input(GRAD_SCALE, 'float32', []);
    const gradOutputs: Record<string, Tensor> = { loss, ...outputs };
    trainable.forEach((pi, k) => {
      const name = accName(specs[pi].name);
      const acc = g.input(name, 'float32', specs[pi].shape);
      gradOutputs[`${name}.new`] = op.add(acc, op.mul(grads[k], scale));
    });

    const a = new Graph('train_apply');
    const ps = trainable.map((i) => a.input(specs[i].name, 'float32', specs[i].shape));
    const gs = trainable.map((i) => a.input(accName(specs[i].name), 'float32', specs[i].shape));
    const opt = buildOptimizer(a, ps, gs, config);
    const applyOutputs: Record<string, Tensor> = { grad_norm: opt.gradNorm };
    trainable.forEach((pi, k) => {
      applyOutputs[`${specs[pi].name}.new`] = opt.newParams[k];
      for (const [slot, t] of Object.entries(opt.newState[k])) applyOutputs[`${specs[pi].name}.${slot}.new`] = t;
    });

    const [gradGraph, applyGraph] = await Promise.all([
      CompiledGraph.compile(gradOutputs, runtime),
      // The update's tensors are parameter-sized and short-lived; without an arena they go back to
      // the allocator after each step instead of staying reserved (gpt2-124m DPO step: peak RSS
      // 12.6 -> 11.1 GB, same step time; bench/dpo.ts).
      CompiledGraph.compile(applyOutputs, { ...runtime, memoryArena: false }),
    ]);
    return new TrainStep(gradGraph, applyGraph, specs, trainable, config, Object.keys(outputs));
  }

  /**
   * One optimisation step with learning rate `lr`: gradients of every micro-batch in `data`
   * (one feed record, or several for gradient accumulation) are averaged, then applied.
   */
  async step(data: Readonly<Record<string, HostTensor>> | readonly Readonly<Record<string, HostTensor>>[], lr: number): Promise<StepResult> {
    const micro = Array.isArray(data) ? data : [data as Readonly<Record<string, HostTensor>>];
    if (micro.length === 0) throw new Error('TrainStep.step: no micro-batches');
    for (const acc of this.grads) acc.fill(0);
    const paramFeeds: Record<string, HostTensor> = {};
    this.specs.forEach((s, i) => (paramFeeds[s.name] = { data: this.params[i], dims: s.shape }));
    const accFeeds: Record<string, HostTensor> = {};
    const accInto: Record<string, HostTensor> = {};
    this.trainable.forEach((pi, k) => {
      const s = this.specs[pi];
      accFeeds[accName(s.name)] = { data: this.grads[k], dims: s.shape };
      accInto[`${accName(s.name)}.new`] = { data: this.grads[k], dims: s.shape };
    });
    const scale = { data: Float32Array.of(1 / micro.length), dims: [] };
    let lossSum = 0;
    const microOutputs: Record<string, HostTensor>[] = [];
    for (const feeds of micro) {
      const out = await this.gradGraph.run({ ...feeds, ...paramFeeds, ...accFeeds, [GRAD_SCALE]: scale }, accInto);
      lossSum += Number(out.loss.data[0]);
      const extras: Record<string, HostTensor> = {};
      for (const k of this.extraOutputs) extras[k] = out[k];
      microOutputs.push(extras);
    }

    this.stepCount++;
    const feeds: Record<string, HostTensor> = { ...accFeeds };
    const into: Record<string, HostTensor> = {};
    for (const [k, v] of Object.entries(stepScalars(this.config, lr, this.stepCount))) feeds[k] = { data: Float32Array.of(v), dims: [] };
    this.trainable.forEach((pi, k) => {
      const s = this.specs[pi];
      feeds[s.name] = into[`${s.name}.new`] = { data: this.params[pi], dims: s.shape };
      for (const [slot, buf] of Object.entries(this.state[k])) {
        feeds[`${s.name}.${slot}`] = into[`${s.name}.${slot}.new`] = { data: buf, dims: s.shape };
      }
    });
    const applied = await this.applyGraph.run(feeds, into);
    return {
      loss: lossSum / micro.length,
      gradNorm: Number(applied.grad_norm.data[0]),
      outputs: microOutputs[microOutputs.length - 1],
      microOutputs,
    };
  }

  /** Current parameter values by name (the live buffers: copy before the next step if needed). */
  parameters(): Map<string, Float32Array> {
    return new Map(this.specs.map((s, i) => [s.name, this.params[i]]));
  }

  /** Optimizer state by parameter name and slot, and the number of steps taken. */
  optimizerState(): { step: number; state: Map<string, Record<string, Float32Array>> } {
    return {
      step: this.stepCount,
      state: new Map(this.trainable.map((pi, k) => [this.specs[pi].name, this.state[k]])),
    };
  }

  /** Restores parameters and optimizer state (for resuming from a checkpoint). */
  restore(params: ReadonlyMap<string, Float32Array>, state: ReadonlyMap<string, Record<string, Float32Array>>, step: number): void {
    this.specs.forEach((s, i) => {
      const v = params.get(s.name);
      if (v) this.params[i].set(v);
    });
    this.trainable.forEach((pi, k) => {
      const st = state.get(this.specs[pi].name);
      if (st) for (const [slot, buf] of Object.entries(this.state[k])) if (st[slot]) buf.set(st[slot]);
    });
    this.stepCount = step;
  }

  async release(): Promise<void> {
    await Promise.all([this.gradGraph.release(), this.applyGraph.release()]);
  }
}
