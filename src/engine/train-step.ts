/**
 * A compiled training step.
 *  - One micro-batch per step (the usual case): ONE graph runs forward, loss, backward, clipping
 *    and the optimizer update, writing the new parameters and optimizer state in place. Gradients
 *    never leave ONNX Runtime: no gradient buffers on the host and no copies of them.
 *  - Gradient accumulation (several micro-batches): two graphs, compiled on first use. The
 *    gradient graph runs forward, loss and backward on one micro-batch and adds its gradients,
 *    scaled by 1/micro-batches, into accumulator buffers; the apply graph clips them and runs the
 *    optimizer update. k micro-batches of size b give the update of one batch of size k*b (for
 *    losses that are means over rows).
 *  - K steps per run (TrainStep.steps, one micro-batch each): one K-unrolled graph, compiled on
 *    first use, whose parameters and optimizer state leave ONNX Runtime once per K steps (the
 *    output copies below are paid once per run instead of once per step).
 *
 * In-place writes are safe because every reader of an input that is also written either is the
 * element-wise op computing the new value (same index in, same index out) or runs before any
 * write: buildOptimizer makes every parameter write depend on all gradients and on the loss and
 * metrics (test/engine/train-step.test.ts checks a metric that reads a weight directly). The
 * gradient graph never outputs a parameter. Memory: parameters + optimizer state (+ gradient
 * accumulators when accumulating), as in PyTorch.
 *
 * What a step costs beyond its compute (verified on onnxruntime-node 1.30, linux-x64; see
 * test/engine/runtime.test.ts and `npm run bench -- trainstep`):
 *  - feeds are zero-copy: the binding wraps each Float32Array's memory in an OrtValue (a graph
 *    reading 16 values of a 20M-float input runs in ~0.1 ms);
 *  - preallocated outputs are written in place (the buffer's contents change, and ORT computes
 *    straight into it), BUT the 1.30 binding then also copies every output into a freshly
 *    allocated ArrayBuffer and returns that copy (writing into the returned array does not
 *    touch ours). There is no way to decline it, so every step pays, per output byte, one
 *    allocation + memcpy + later GC: here params + optimizer state (and the gradients when
 *    accumulating). CompiledGraph drops the copies and returns the caller's buffers; the copies
 *    stay allocated until V8 collects them (gpt2-124m: ~1.4 GB per step, ~0.9 GB of peak RSS).
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
import { frozenInput } from './frozen.js';
import { Graph, type Tensor } from './graph.js';
import * as op from './ops.js';
import { buildOptimizer, stateSlots, stepScalars, STEP_SCALARS, type OptimizerConfig, type OptimizerGraph } from './optim.js';
import { ResidentTensors } from './resident.js';
import type { MatmulFlops } from './flops.js';
import { CompiledGraph, type CompileStats, type DeviceTensor, type HostTensor, type RuntimeOptions } from './runtime.js';

/** A parameter's values: float32, or a frozen weight's float16 bits (engine/frozen.ts). */
export type ParamData = Float32Array | Uint16Array;

export interface ParamSpec {
  name: string;
  shape: readonly number[];
  /** float32 values, or (frozen parameters only) float16 bits held at half the memory, cast to float32 in the graph. */
  data: ParamData;
  /** Frozen parameters are fed but not updated (no gradient, no optimizer state). */
  trainable?: boolean;
}

/** `params` as float32 arrays, for code that has no float16 path (an error names a float16 one). */
export function float32Params(params: ReadonlyMap<string, ParamData>): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const [name, data] of params) {
    if (!(data instanceof Float32Array)) throw new Error(`'${name}' is held as float16 here; this needs float32 weights`);
    out.set(name, data);
  }
  return out;
}

/** Declares the specs as graph inputs: trainable ones float32, frozen ones frozen in their storage type (as float32 views). */
export function declareParams(g: Graph, specs: readonly ParamSpec[]): Record<string, Tensor> {
  const params: Record<string, Tensor> = {};
  for (const s of specs) {
    if (s.trainable !== false) {
      if (!(s.data instanceof Float32Array)) throw new Error(`TrainStep: trainable parameter '${s.name}' must be float32`);
      params[s.name] = g.input(s.name, 'float32', s.shape);
    } else {
      // Builders may take cheaper paths through frozen weights (e.g. a frozen LM head, sequence-logps.ts).
      params[s.name] = frozenInput(g, s.name, s.shape, s.data instanceof Uint16Array ? 'float16' : 'float32');
    }
  }
  return params;
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
  /** False when an updated parameter is NaN or infinite (checked in the graph, one reduction per tensor). */
  paramsFinite: boolean;
  /** Extra outputs of the last micro-batch. */
  outputs: Record<string, HostTensor>;
  /** Extra outputs of every micro-batch, in order. */
  microOutputs: Record<string, HostTensor>[];
}

const GRAD_SCALE = 'grad_scale';
const PARAMS_CHECK = 'params_check';

/** A new graph with the parameters as inputs (named as the specs) and `build`'s loss on them. */
function traceLoss(name: string, specs: readonly ParamSpec[], build: (g: Graph, params: Record<string, Tensor>) => LossBuild) {
  const g = new Graph(name);
  const params = declareParams(g, specs);
  const { loss, outputs = {} } = build(g, params);
  return { g, params, loss, outputs };
}

/**
 * Outputs `<param>.new` and `<param>.<slot>.new` of an optimizer update (written in place into the
 * inputs of the same names), and `params_check`: 0 when every updated parameter is finite, NaN
 * otherwise (sum(p) * 0 is NaN exactly when p holds a NaN or an infinity, barring a sum that
 * overflows, which finite trained weights do not reach).
 */
function updateOutputs(specs: readonly ParamSpec[], trainable: readonly number[], opt: OptimizerGraph): Record<string, Tensor> {
  const out: Record<string, Tensor> = { [PARAMS_CHECK]: opt.newParams.map((p) => op.mul(op.sum(p), 0)).reduce((a, b) => op.add(a, b)) };
  trainable.forEach((pi, k) => {
    out[`${specs[pi].name}.new`] = opt.newParams[k];
    for (const [slot, t] of Object.entries(opt.newState[k])) out[`${specs[pi].name}.${slot}.new`] = t;
  });
  return out;
}
const accName = (p: string): string => `${p}.grad`;
/** Inputs and outputs of step k in a graph of several steps (TrainStep.steps) carry this prefix. */
const stepPrefix = (k: number): string => `step${k}/`;

export class TrainStep {
  private readonly params: ParamData[];
  private readonly state: Record<string, Float32Array>[];
  /** Gradient accumulators: allocated with the accumulating graphs, on the first multi-micro-batch step. */
  private grads: Float32Array[] = [];
  private accumulating?: Promise<{ gradGraph: CompiledGraph; applyGraph: CompiledGraph }>;
  /** Graphs of K steps per run (TrainStep.steps), by K, compiled on first use. */
  private readonly unrolled = new Map<number, Promise<CompiledGraph>>();
  private stepCount = 0;
  /** Where the fused step's compile time went: trace + autodiff + optimizer (buildMs), then the compile's own stats. */
  compileStats: CompileStats & { buildMs: number } = { buildMs: 0, exportMs: 0, sessionMs: 0, onnxBytes: 0, cache: 'off' };
  /** On WebGPU: parameters and optimizer state kept on the device between steps (resident.ts). */
  private readonly resident?: ResidentTensors;
  /** On WebGPU with gradient accumulation: zero accumulators, uploaded once, fed to each step's first micro-batch. */
  private zeroGrads?: ResidentTensors;

  private constructor(
    /** forward + loss + backward + clip + update of one micro-batch, in one run. */
    private readonly fusedGraph: CompiledGraph,
    private readonly build: (g: Graph, params: Record<string, Tensor>) => LossBuild,
    private readonly specs: readonly ParamSpec[],
    private readonly trainable: readonly number[],
    private readonly config: OptimizerConfig,
    private readonly runtime: RuntimeOptions,
    private readonly extraOutputs: readonly string[],
  ) {
    this.params = specs.map((s) => s.data);
    const slots = stateSlots(config);
    this.state = trainable.map((i) => Object.fromEntries(slots.map((k) => [k, new Float32Array(specs[i].data.length)])));
    if (fusedGraph.device === 'webgpu') {
      const stateSpecs = trainable.flatMap((i) => slots.map((k) => ({ name: `${specs[i].name}.${k}`, shape: specs[i].shape })));
      const changing = [...trainable.map((i) => specs[i].name), ...stateSpecs.map((s) => s.name)];
      this.resident = new ResidentTensors([...specs.map((s) => ({ name: s.name, shape: s.shape })), ...stateSpecs], changing, runtime);
    }
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

    const buildStart = performance.now();
    const { g, params, loss, outputs } = traceLoss('train_step', specs, build);
    const trainableInputs = trainable.map((i) => params[specs[i].name]);
    const grads = grad(loss, trainableInputs, undefined, { recastFrozen: true });
    // Parameters are written in place: the update waits for the loss and metrics (see buildOptimizer).
    const opt = buildOptimizer(g, trainableInputs, grads, config, [loss, ...Object.values(outputs)]);
    const updates = updateOutputs(specs, trainable, opt);
    const fusedOutputs: Record<string, Tensor> = { loss, ...outputs, grad_norm: opt.gradNorm, ...updates };
    const buildMs = performance.now() - buildStart;
    const fusedGraph = await CompiledGraph.compile(fusedOutputs, runtime, { deviceOutputs: deviceUpdates(updates) });
    const step = new TrainStep(fusedGraph, build, specs, trainable, config, runtime, Object.keys(outputs));
    step.compileStats = { buildMs, ...fusedGraph.stats };
    return step;
  }

  /**
   * FLOPs of the matrix products of one step (one micro-batch) on `feeds`, counted from the compiled
   * step graph (flops.ts): what forward, backward, recomputation and update really multiply.
   */
  matmulFlops(feeds: Readonly<Record<string, { dims: readonly number[] }>>): MatmulFlops {
    return this.fusedGraph.matmulFlops(feeds);
  }

  /**
   * The two graphs of gradient accumulation: one adds a micro-batch's gradients, scaled, into
   * accumulators; the other clips and updates from them.
   */
  private async compileAccumulating(): Promise<{ gradGraph: CompiledGraph; applyGraph: CompiledGraph }> {
    const { specs, trainable } = this;
    const { g, params, loss, outputs } = traceLoss('train_grad', specs, this.build);
    const grads = grad(loss, trainable.map((i) => params[specs[i].name]), undefined, { recastFrozen: true });
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
    const opt = buildOptimizer(a, ps, gs, this.config);
    const applyOutputs: Record<string, Tensor> = { grad_norm: opt.gradNorm, ...updateOutputs(specs, trainable, opt) };
    const [gradGraph, applyGraph] = await Promise.all([
      CompiledGraph.compile(gradOutputs, this.runtime, { deviceOutputs: Object.keys(gradOutputs).filter((n) => n.endsWith('.grad.new')) }),
      // The update's tensors are parameter-sized and short-lived; without an arena they go back to
      // the allocator after each step instead of staying reserved (gpt2-124m DPO step: peak RSS
      // 12.6 -> 11.1 GB, same step time; bench/dpo.ts).
      CompiledGraph.compile(applyOutputs, { ...this.runtime, memoryArena: false }, { deviceOutputs: deviceUpdates(applyOutputs) }),
    ]);
    this.grads = trainable.map((i) => new Float32Array(specs[i].data.length));
    return { gradGraph, applyGraph };
  }

  /**
   * The graph of K optimizer steps in one run: K copies of the fused step, the parameters and
   * optimizer state of step k+1 being step k's new values (tensors inside ONNX Runtime), so that
   * only the last step's values come out. Step k's data inputs are named `step<k>/<name>` (their
   * dynamic dims too: the K batches may differ in size), the step scalars are [K] vectors, and
   * step k's loss, metrics, gradient norm and parameter check are outputs `step<k>/<name>`.
   *
   * Ordering: step k's data inputs are read through a Where that waits for step k-1's new
   * parameters, so nothing of step k (masks and other values computed from data alone) runs
   * while step k-1's activations are alive; the parameters themselves order the rest. In-place
   * writes stay safe: only the last step writes the caller's buffers, and its update waits for
   * its own gradients, which wait for every earlier step.
   */
  private async compileUnrolled(K: number): Promise<CompiledGraph> {
    const { specs, trainable, config } = this;
    const g = new Graph(`train_steps_${K}`);
    let params = declareParams(g, specs);
    const slots = stateSlots(config);
    let state = trainable.map((pi) => Object.fromEntries(slots.map((slot) => [slot, g.input(`${specs[pi].name}.${slot}`, 'float32', specs[pi].shape)])));
    const scalarVectors = Object.fromEntries(STEP_SCALARS.map((n) => [n, g.input(n, 'float32', [K])]));
    const outputs: Record<string, Tensor> = {};
    let previousCheck: Tensor | undefined;
    for (let k = 0; k < K; k++) {
      const gate = previousCheck;
      // Where(c < c, x, x) is x, computed only once c (step k-1's parameter check) exists.
      const wrap = gate ? (x: Tensor): Tensor => op.where(op.less(gate, gate), x, x) : undefined;
      const { loss, outputs: extras = {} } = g.scoped(stepPrefix(k), () => this.build(g, params), wrap);
      const trainableTensors = trainable.map((i) => params[specs[i].name]);
      const grads = grad(loss, trainableTensors, undefined, { recastFrozen: true });
      const scalars = Object.fromEntries(STEP_SCALARS.map((n) => [n, op.reshape(op.slice(scalarVectors[n], 0, k, k + 1), [])])) as OptimizerGraph['scalars'];
      const opt = buildOptimizer(g, trainableTensors, grads, config, [loss, ...Object.values(extras)], { scalars, state });
      const { [PARAMS_CHECK]: check, ...updated } = updateOutputs(specs, trainable, opt);
      const p = stepPrefix(k);
      Object.assign(outputs, { [`${p}loss`]: loss, [`${p}grad_norm`]: opt.gradNorm, [`${p}${PARAMS_CHECK}`]: check });
      for (const [name, t] of Object.entries(extras)) outputs[`${p}${name}`] = t;
      // Only the last step's parameters and state are outputs (written into the caller's buffers).
      if (k === K - 1) Object.assign(outputs, updated);
      params = { ...params };
      trainable.forEach((pi, j) => (params[specs[pi].name] = opt.newParams[j]));
      state = opt.newState;
      previousCheck = check;
    }
    return CompiledGraph.compile(outputs, this.runtime, { deviceOutputs: deviceUpdates(outputs) });
  }

  /**
   * `batches.length` optimizer steps in ONE session.run (one micro-batch each; step k at learning
   * rate `lrs[k]`): the same updates as that many calls of {@link step}, but the parameters and
   * optimizer state leave ONNX Runtime once, after the last step. onnxruntime-node 1.30 copies
   * every output into a fresh buffer on each run (see the top of this file); this pays that once
   * per K steps. A graph is compiled per distinct K on first use (K = 1 is {@link step}).
   */
  /** Compiles the graph of K steps per run now rather than on the first {@link steps} call of K batches. */
  async prepareSteps(K: number): Promise<void> {
    if (!Number.isInteger(K) || K < 1) throw new Error(`TrainStep.prepareSteps: K must be a positive integer, got ${K}`);
    if (K > 1) await this.unrolledGraph(K);
  }

  private unrolledGraph(K: number): Promise<CompiledGraph> {
    let compiled = this.unrolled.get(K);
    if (!compiled) this.unrolled.set(K, (compiled = this.compileUnrolled(K)));
    return compiled;
  }

  async steps(batches: readonly Readonly<Record<string, HostTensor>>[], lrs: readonly number[]): Promise<StepResult[]> {
    if (batches.length !== lrs.length) throw new Error(`TrainStep.steps: ${batches.length} batches but ${lrs.length} learning rates`);
    if (batches.length === 0) throw new Error('TrainStep.steps: no batches');
    if (batches.length === 1) return [await this.step(batches[0], lrs[0])];
    const K = batches.length;
    const graph = await this.unrolledGraph(K);
    const feeds: Record<string, HostTensor> = {};
    const into: Record<string, HostTensor> = {};
    this.specs.forEach((s, i) => (feeds[s.name] = { data: this.params[i], dims: s.shape }));
    this.trainable.forEach((pi, j) => {
      const s = this.specs[pi];
      into[`${s.name}.new`] = { data: this.params[pi], dims: s.shape };
      for (const [slot, buf] of Object.entries(this.state[j])) feeds[`${s.name}.${slot}`] = into[`${s.name}.${slot}.new`] = { data: buf, dims: s.shape };
    });
    const perStep = lrs.map((lr, k) => stepScalars(this.config, lr, this.stepCount + 1 + k));
    for (const n of STEP_SCALARS) feeds[n] = { data: Float32Array.from(perStep, (sc) => sc[n]), dims: [K] };
    batches.forEach((b, k) => {
      for (const [name, t] of Object.entries(b)) feeds[stepPrefix(k) + name] = t;
    });
    const out = this.resident ? await this.runResident(graph, feeds) : await graph.run(feeds, into);
    this.stepCount += K;
    return batches.map((_, k) => {
      const p = stepPrefix(k);
      const extras: Record<string, HostTensor> = {};
      for (const name of this.extraOutputs) extras[name] = out[p + name];
      return {
        loss: Number(out[`${p}loss`].data[0]),
        gradNorm: Number(out[`${p}grad_norm`].data[0]),
        paramsFinite: Number(out[p + PARAMS_CHECK].data[0]) === 0,
        outputs: extras,
        microOutputs: [extras],
      };
    });
  }

  /**
   * One optimisation step with learning rate `lr`: gradients of every micro-batch in `data`
   * (one feed record, or several for gradient accumulation) are averaged, then applied.
   */
  async step(data: Readonly<Record<string, HostTensor>> | readonly Readonly<Record<string, HostTensor>>[], lr: number): Promise<StepResult> {
    const micro = Array.isArray(data) ? data : [data as Readonly<Record<string, HostTensor>>];
    if (micro.length === 0) throw new Error('TrainStep.step: no micro-batches');
    const paramFeeds: Record<string, HostTensor> = {};
    this.specs.forEach((s, i) => (paramFeeds[s.name] = { data: this.params[i], dims: s.shape }));
    const stepFeeds: Record<string, HostTensor> = {};
    const updateInto: Record<string, HostTensor> = {};
    for (const [k, v] of Object.entries(stepScalars(this.config, lr, this.stepCount + 1))) stepFeeds[k] = { data: Float32Array.of(v), dims: [] };
    this.trainable.forEach((pi, k) => {
      const s = this.specs[pi];
      updateInto[`${s.name}.new`] = { data: this.params[pi], dims: s.shape };
      for (const [slot, buf] of Object.entries(this.state[k])) {
        stepFeeds[`${s.name}.${slot}`] = updateInto[`${s.name}.${slot}.new`] = { data: buf, dims: s.shape };
      }
    });

    if (micro.length === 1) {
      const feeds = { ...micro[0], ...paramFeeds, ...stepFeeds };
      const out = this.resident ? await this.runResident(this.fusedGraph, feeds) : await this.fusedGraph.run(feeds, updateInto);
      this.stepCount++;
      const extras = this.pickExtras(out);
      return { loss: Number(out.loss.data[0]), gradNorm: Number(out.grad_norm.data[0]), paramsFinite: Number(out[PARAMS_CHECK].data[0]) === 0, outputs: extras, microOutputs: [extras] };
    }

    this.accumulating ??= this.compileAccumulating();
    const { gradGraph, applyGraph } = await this.accumulating;
    if (this.resident) return this.accumulateResident(micro, gradGraph, applyGraph, { ...paramFeeds, ...stepFeeds });
    for (const acc of this.grads) acc.fill(0);
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
      const out = await gradGraph.run({ ...feeds, ...paramFeeds, ...accFeeds, [GRAD_SCALE]: scale }, accInto);
      lossSum += Number(out.loss.data[0]);
      microOutputs.push(this.pickExtras(out));
    }
    const applied = await applyGraph.run({ ...paramFeeds, ...accFeeds, ...stepFeeds }, updateInto);
    return this.accumulated(lossSum, applied, microOutputs);
  }

  /** The result of an accumulated step (counted): mean loss, and the apply graph's outputs. */
  private accumulated(lossSum: number, applied: Record<string, HostTensor>, microOutputs: Record<string, HostTensor>[]): StepResult {
    this.stepCount++;
    return {
      loss: lossSum / microOutputs.length,
      gradNorm: Number(applied.grad_norm.data[0]),
      paramsFinite: Number(applied[PARAMS_CHECK].data[0]) === 0,
      outputs: microOutputs[microOutputs.length - 1],
      microOutputs,
    };
  }

  /**
   * Runs `graph` with the resident parameters and optimizer state in place of the host ones in
   * `feeds` (uploaded on first use), and keeps its updated values on the device.
   */
  private async runResident(graph: CompiledGraph, feeds: Record<string, HostTensor>): Promise<Record<string, HostTensor>> {
    const resident = this.resident as ResidentTensors;
    const onDevice = await resident.feeds(() => feeds);
    const { host, device } = await graph.runOnDevice({ ...feeds, ...onDevice });
    resident.adopt(device);
    return host;
  }

  /** Gradient accumulation with parameters, state and accumulators on the device. */
  private async accumulateResident(
    micro: readonly Readonly<Record<string, HostTensor>>[],
    gradGraph: CompiledGraph,
    applyGraph: CompiledGraph,
    hostFeeds: Record<string, HostTensor>,
  ): Promise<StepResult> {
    const resident = this.resident as ResidentTensors;
    const params = await resident.feeds(() => hostFeeds);
    const accSpecs = this.trainable.map((pi) => ({ name: accName(this.specs[pi].name), shape: this.specs[pi].shape }));
    this.zeroGrads ??= new ResidentTensors(accSpecs, [], this.runtime);
    let acc: Record<string, DeviceTensor> = await this.zeroGrads.feeds(() =>
      Object.fromEntries(accSpecs.map((s) => [s.name, { data: new Float32Array(s.shape.reduce((a, b) => a * b, 1)), dims: s.shape }])),
    );
    const scale = { data: Float32Array.of(1 / micro.length), dims: [] };
    let lossSum = 0;
    const microOutputs: Record<string, HostTensor>[] = [];
    for (const [i, feeds] of micro.entries()) {
      const { host, device } = await gradGraph.runOnDevice({ ...feeds, ...params, ...acc, [GRAD_SCALE]: scale });
      // The zero accumulators stay for the next step; later partial sums are freed once used.
      if (i > 0) for (const t of Object.values(acc)) t.dispose();
      acc = Object.fromEntries(Object.entries(device).map(([n, t]) => [n.slice(0, -'.new'.length), t]));
      lossSum += Number(host.loss.data[0]);
      microOutputs.push(this.pickExtras(host));
    }
    const { host: applied, device } = await applyGraph.runOnDevice({ ...hostFeeds, ...params, ...acc });
    for (const t of Object.values(acc)) t.dispose();
    resident.adopt(device);
    return this.accumulated(lossSum, applied, microOutputs);
  }

  /**
   * Brings the parameters and optimizer state back to the host arrays that {@link parameters}
   * and {@link optimizerState} return. Needed on WebGPU (they stay on the device between steps)
   * before reading them; a no-op elsewhere and when nothing changed since the last sync.
   */
  async sync(): Promise<void> {
    if (!this.resident) return;
    const into: Record<string, Float32Array> = {};
    this.specs.forEach((s, i) => (into[s.name] = this.params[i] as Float32Array));
    this.trainable.forEach((pi, k) => {
      for (const [slot, buf] of Object.entries(this.state[k])) into[`${this.specs[pi].name}.${slot}`] = buf;
    });
    await this.resident.sync(into);
  }

  private checkSynced(what: string): void {
    if (this.resident?.hostBehind) throw new Error(`TrainStep.${what}: the values are on the device; await sync() first`);
  }

  private pickExtras(out: Record<string, HostTensor>): Record<string, HostTensor> {
    const extras: Record<string, HostTensor> = {};
    for (const k of this.extraOutputs) extras[k] = out[k];
    return extras;
  }

  /** Current parameter values by name (the live buffers: copy before the next step if needed). */
  parameters(): Map<string, ParamData> {
    this.checkSynced('parameters');
    return new Map(this.specs.map((s, i) => [s.name, this.params[i]]));
  }

  /** Optimizer state by parameter name and slot, and the number of steps taken. */
  optimizerState(): { step: number; state: Map<string, Record<string, Float32Array>> } {
    this.checkSynced('optimizerState');
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
    this.resident?.invalidate();
  }

  async release(): Promise<void> {
    // A K-step graph whose compile failed has nothing to release.
    const unrolled = await Promise.all([...this.unrolled.values()].map((c) => c.catch(() => undefined)));
    const graphs = [this.fusedGraph, ...unrolled.filter((c) => c !== undefined)];
    if (this.accumulating) {
      const { gradGraph, applyGraph } = await this.accumulating;
      graphs.push(gradGraph, applyGraph);
    }
    await Promise.all(graphs.map((c) => c.release()));
    await this.resident?.release();
    await this.zeroGrads?.release();
  }
}

/** The outputs of an update that stay on the device (WebGPU): new parameters and optimizer state. */
function deviceUpdates(outputs: Readonly<Record<string, Tensor>>): string[] {
  return Object.keys(outputs).filter((n) => n.endsWith('.new') && !n.endsWith('.grad.new'));
}
