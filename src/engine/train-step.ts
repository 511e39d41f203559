/**
 * A compiled training step: forward, loss, backward, clipping and the optimizer update in one
 * session.run. Parameters and optimizer state are Float32Arrays owned here; each step reads one
 * set of buffers and writes the other (ORT gives no ordering guarantee that would make writing
 * a parameter in place safe while other nodes still read it), then the two swap.
 */
import { grad } from './autodiff.js';
import { Graph, type Tensor } from './graph.js';
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
  /** Extra scalar or tensor outputs returned every step (metrics). */
  outputs?: Record<string, Tensor>;
}

export interface StepResult {
  loss: number;
  gradNorm: number;
  outputs: Record<string, HostTensor>;
}

interface Buffers {
  params: Float32Array[];
  state: Record<string, Float32Array>[];
}

export class TrainStep {
  private current: Buffers;
  private next: Buffers;
  private stepCount = 0;

  private constructor(
    private readonly compiled: CompiledGraph,
    private readonly specs: readonly ParamSpec[],
    private readonly trainable: readonly number[],
    private readonly config: OptimizerConfig,
    private readonly extraOutputs: readonly string[],
  ) {
    const slots = stateSlots(config);
    const make = (copy: boolean): Buffers => ({
      params: specs.map((s) => (copy ? s.data : new Float32Array(s.data.length))),
      state: trainable.map((i) => Object.fromEntries(slots.map((k) => [k, new Float32Array(specs[i].data.length)]))),
    });
    this.current = make(true);
    this.next = make(false);
    // Frozen parameters are never written: both sides share the caller's buffer.
    specs.forEach((s, i) => {
      if (!trainable.includes(i)) this.next.params[i] = this.current.params[i];
    });
  }

  /**
   * Builds and compiles the step. `build` receives the parameter tensors (graph inputs named as
   * the specs) and declares its own data inputs on `g`.
   */
  static async create(
    specs: readonly ParamSpec[],
    build: (g: Graph, params: Record<string, Tensor>) => LossBuild,
    config: OptimizerConfig,
    runtime: RuntimeOptions = {},
  ): Promise<TrainStep> {
    const g = new Graph('train_step');
    const params: Record<string, Tensor> = {};
    for (const s of specs) params[s.name] = g.input(s.name, 'float32', s.shape);
    const { loss, outputs = {} } = build(g, params);
    const trainable = specs.map((s, i) => (s.trainable === false ? -1 : i)).filter((i) => i >= 0);
    const wrt = trainable.map((i) => params[specs[i].name]);
    const grads = grad(loss, wrt);
    const opt = buildOptimizer(g, wrt, grads, config);
    const graphOutputs: Record<string, Tensor> = { loss, grad_norm: opt.gradNorm, ...outputs };
    trainable.forEach((pi, k) => {
      graphOutputs[`${specs[pi].name}.new`] = opt.newParams[k];
      for (const [slot, t] of Object.entries(opt.newState[k])) graphOutputs[`${specs[pi].name}.${slot}.new`] = t;
    });
    const compiled = await CompiledGraph.compile(graphOutputs, runtime);
    return new TrainStep(compiled, specs, trainable, config, Object.keys(outputs));
  }

  /** Runs one optimisation step with learning rate `lr` on the given data feeds. */
  async step(data: Readonly<Record<string, HostTensor>>, lr: number): Promise<StepResult> {
    this.stepCount++;
    const feeds: Record<string, HostTensor> = { ...data };
    const into: Record<string, HostTensor> = {};
    const scalars = stepScalars(this.config, lr, this.stepCount);
    for (const [k, v] of Object.entries(scalars)) feeds[k] = { data: Float32Array.of(v), dims: [] };
    this.specs.forEach((s, i) => (feeds[s.name] = { data: this.current.params[i], dims: s.shape }));
    this.trainable.forEach((pi, k) => {
      const s = this.specs[pi];
      into[`${s.name}.new`] = { data: this.next.params[pi], dims: s.shape };
      for (const [slot, buf] of Object.entries(this.current.state[k])) {
        feeds[`${s.name}.${slot}`] = { data: buf, dims: s.shape };
        into[`${s.name}.${slot}.new`] = { data: this.next.state[k][slot], dims: s.shape };
      }
    });
    const out = await this.compiled.run(feeds, into);
    [this.current, this.next] = [this.next, this.current];
    const outputs: Record<string, HostTensor> = {};
    for (const k of this.extraOutputs) outputs[k] = out[k];
    return { loss: Number(out.loss.data[0]), gradNorm: Number(out.grad_norm.data[0]), outputs };
  }

  /** Current parameter values by name (views of the live buffers; copy before the next step). */
  parameters(): Map<string, Float32Array> {
    return new Map(this.specs.map((s, i) => [s.name, this.current.params[i]]));
  }

  /** Optimizer state by parameter name and slot, and the number of steps taken. */
  optimizerState(): { step: number; state: Map<string, Record<string, Float32Array>> } {
    return {
      step: this.stepCount,
      state: new Map(this.trainable.map((pi, k) => [this.specs[pi].name, this.current.state[k]])),
    };
  }

  /** Restores parameters and optimizer state (for resuming from a checkpoint). */
  restore(params: ReadonlyMap<string, Float32Array>, state: ReadonlyMap<string, Record<string, Float32Array>>, step: number): void {
    this.specs.forEach((s, i) => {
      const v = params.get(s.name);
      if (v) this.current.params[i].set(v);
    });
    this.trainable.forEach((pi, k) => {
      const st = state.get(this.specs[pi].name);
      if (st) for (const [slot, buf] of Object.entries(this.current.state[k])) if (st[slot]) buf.set(st[slot]);
    });
    this.stepCount = step;
  }

  async release(): Promise<void> {
    await this.compiled.release();
  }
}
