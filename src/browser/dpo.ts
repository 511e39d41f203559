/**
 * DPO in a browser tab: the same graphs as `dpo train` (buildDpoLoss, TrainStep, Scorer,
 * Generator), run by onnxruntime-web on WebGPU or wasm, with the model and the labelled pairs
 * in memory. The whole labelled set is one batch per step (a page labels a handful of pairs).
 */
import { collatePreferences, type PreferenceBatch } from '../data/collate.js';
import type { Device, DeviceRequest } from '../engine/device-types.js';
import type { HostTensor, RuntimeOptions } from '../engine/runtime.js';
import { TrainStep, type ParamSpec } from '../engine/train-step.js';
import { DpoError } from '../errors.js';
import { Generator } from '../generate/generator.js';
import { createModel } from '../models/registry.js';
import type { CausalLM } from '../models/types.js';
import { Scorer } from '../scoring/scorer.js';
import { scoredFeeds } from '../scoring/sequence-logps.js';
import { buildDpoLoss } from '../train/dpo/loss-graph.js';
import { platform } from '../engine/ort-platform.js';
import { safetensorsBytes, type MemoryTensor } from './safetensors.js';

/** One labelled pair as token ids (the prompt's and each completion's). */
export interface TokenPair {
  promptIds: readonly number[];
  chosenIds: readonly number[];
  rejectedIds: readonly number[];
}

export interface BrowserDpoOptions {
  /** config.json of the model. */
  config: Record<string, unknown>;
  /** The checkpoint's tensors by file key (readSafetensorsBytes). */
  tensors: ReadonlyMap<string, MemoryTensor>;
  /** 'auto' (default): WebGPU when the browser gives an adapter, else wasm ('cpu'). */
  device?: DeviceRequest;
  /** DPO's beta (default 0.1, TRL's). */
  beta?: number;
  /** AdamW learning rate (default 1e-4: a few labelled pairs, a few steps). */
  learningRate?: number;
  /** Id that pads sequences (default: config's eos_token_id, else 0). */
  padTokenId?: number;
}

/** What one step reports, as TRL names it (rewards are beta * (log pi - log pi_ref), before the update). */
export interface BrowserStepMetrics {
  step: number;
  loss: number;
  gradNorm: number;
  /** Mean implicit reward of the chosen and of the rejected completions. */
  rewardsChosen: number;
  rewardsRejected: number;
  /** Fraction of pairs whose chosen reward is above the rejected one. */
  accuracy: number;
  seconds: number;
}

/** A file to hand to the user (PEFT adapter or model folder contents). */
export interface OutputFile {
  name: string;
  bytes: Uint8Array;
}

const now = (): number => performance.now() / 1000;

export class BrowserDpo {
  private batch?: PreferenceBatch;
  private referenceLogps?: Float32Array;
  private stepCount = 0;
  private scorer?: Promise<Scorer>;
  private generator?: Promise<Generator>;

  private constructor(
    readonly model: CausalLM,
    readonly device: Device,
    private readonly config: Record<string, unknown>,
    private readonly specs: ParamSpec[],
    /** The weights before training (the reference). */
    readonly reference: ReadonlyMap<string, Float32Array>,
    private readonly step: TrainStep,
    private readonly runtime: RuntimeOptions,
    readonly beta: number,
    readonly learningRate: number,
    readonly padTokenId: number,
  ) {}

  /** Loads the model's weights and compiles the training step on the device (WebGPU or wasm). */
  static async create(options: BrowserDpoOptions): Promise<BrowserDpo> {
    const model = createModel(options.config);
    const device = await platform.resolveDevice(options.device ?? 'auto');
    const runtime: RuntimeOptions = { executionProvider: device };
    const found = new Map<string, MemoryTensor>();
    for (const [key, t] of options.tensors) {
      const name = model.canonicalKey(key);
      if (name !== undefined && !found.has(name)) found.set(name, t);
    }
    const reference = new Map<string, Float32Array>();
    const specs: ParamSpec[] = model.parameters().map((p) => {
      const t = found.get(p.name);
      if (!t) throw new DpoError(`model.safetensors: no tensor for parameter "${p.name}"`);
      const n = p.shape.reduce((a, b) => a * b, 1);
      if (t.data.length !== n) throw new DpoError(`model.safetensors: "${p.name}" has ${t.data.length} values, its shape [${p.shape.join(', ')}] needs ${n}`);
      reference.set(p.name, t.data);
      return { name: p.name, shape: p.shape, data: Float32Array.from(t.data) };
    });
    const beta = options.beta ?? 0.1;
    const eos = options.config.eos_token_id;
    const padTokenId = options.padTokenId ?? (typeof eos === 'number' ? eos : 0);
    const lossOptions = { lossTypes: ['sigmoid'] as const, beta };
    const step = await TrainStep.create(
      specs,
      (g, params) => buildDpoLoss(g, model, params, lossOptions, 2, false),
      { name: 'adamw', weightDecay: 0, maxGradNorm: 1 },
      runtime,
    );
    return new BrowserDpo(model, device, options.config, specs, reference, step, runtime, beta, options.learningRate ?? 1e-4, padTokenId);
  }

  /** Sets the pairs that later steps train on; their reference log-probs are computed now. */
  async setPairs(pairs: readonly TokenPair[]): Promise<void> {
    if (pairs.length === 0) throw new DpoError('no labelled pairs to train on');
    this.batch = collatePreferences(
      pairs.map((p, i) => ({ promptIds: [...p.promptIds], completionIds: [[...p.chosenIds], [...p.rejectedIds]], origin: { file: 'page', line: i + 1 } })),
      { padTokenId: this.padTokenId },
    );
    this.referenceLogps = Float32Array.from(await this.logps(pairs, 'reference'));
  }

  /** One DPO step (forward, loss, backward, AdamW) on every pair set by {@link setPairs}. */
  async trainStep(): Promise<BrowserStepMetrics> {
    const { batch, referenceLogps } = this;
    if (!batch || !referenceLogps) throw new DpoError('trainStep: call setPairs first');
    const start = now();
    const feeds: Record<string, HostTensor> = {
      ...scoredFeeds(batch),
      completion_lengths: { data: Float32Array.from(batch.completionLengths), dims: [batch.numSequences] },
      ref_logps: { data: referenceLogps, dims: [batch.numSequences] },
    };
    const r = await this.step.step(feeds, this.learningRate);
    const policy = r.outputs.policy_logps.data as Float32Array;
    const B = batch.batchSize;
    let chosen = 0;
    let rejected = 0;
    let right = 0;
    for (let i = 0; i < B; i++) {
      const c = this.beta * (policy[i] - referenceLogps[i]);
      const j = this.beta * (policy[B + i] - referenceLogps[B + i]);
      chosen += c;
      rejected += j;
      if (c > j) right++;
    }
    this.stepCount++;
    return { step: this.stepCount, loss: r.loss, gradNorm: r.gradNorm, rewardsChosen: chosen / B, rewardsRejected: rejected / B, accuracy: right / B, seconds: now() - start };
  }

  /** The trained weights (brought back from the device when they live there). */
  async weights(): Promise<Map<string, Float32Array>> {
    await this.step.sync();
    return this.step.parameters();
  }

  private weightsOf(which: 'policy' | 'reference'): Promise<ReadonlyMap<string, Float32Array>> {
    return which === 'reference' ? Promise.resolve(this.reference) : this.weights();
  }

  /** Per-sequence completion log-probs: chosen of every pair, then rejected (sequence n = k*B + i). */
  async logps(pairs: readonly TokenPair[], which: 'policy' | 'reference'): Promise<Float64Array> {
    const batch = collatePreferences(
      pairs.map((p, i) => ({ promptIds: [...p.promptIds], completionIds: [[...p.chosenIds], [...p.rejectedIds]], origin: { file: 'page', line: i + 1 } })),
      { padTokenId: this.padTokenId },
    );
    this.scorer ??= Scorer.create(this.model, this.specs, this.runtime);
    const shapes = new Map(this.specs.map((s) => [s.name, s.shape]));
    return (await (await this.scorer).score(batch, await this.weightsOf(which), shapes)).logps;
  }

  /** Completions (token ids) of each prompt under the trained or the reference weights. */
  async generate(
    prompts: readonly (readonly number[])[],
    options: { which: 'policy' | 'reference'; maxNewTokens: number; seed?: number; doSample?: boolean; temperature?: number; topK?: number; eosTokenIds?: readonly number[] },
  ): Promise<number[][]> {
    this.generator ??= Generator.create(this.model, { runtime: this.runtime });
    const { sequences } = await (await this.generator).generateIds(await this.weightsOf(options.which), prompts, {
      maxNewTokens: options.maxNewTokens,
      seed: options.seed ?? 0,
      doSample: options.doSample ?? false,
      temperature: options.temperature ?? 1,
      topK: options.topK ?? 50,
      topP: 1,
      eosTokenIds: options.eosTokenIds,
      padTokenId: this.padTokenId,
    });
    return sequences.map((s) => s[0].tokenIds);
  }

  /** The trained model as a Hugging Face folder's files: config.json and a float32 model.safetensors. */
  async modelFiles(): Promise<OutputFile[]> {
    const weights = await this.weights();
    const tensors = new Map(this.specs.map((s) => [s.name, { data: weights.get(s.name) as Float32Array, shape: [...s.shape] }]));
    const config = { ...this.config, torch_dtype: 'float32' };
    return [
      { name: 'config.json', bytes: new TextEncoder().encode(`${JSON.stringify(config, null, 2)}\n`) },
      { name: 'model.safetensors', bytes: safetensorsBytes(tensors) },
    ];
  }

  async release(): Promise<void> {
    await this.step.release();
    if (this.scorer) await (await this.scorer).release();
    if (this.generator) await (await this.generator).release();
  }
}
