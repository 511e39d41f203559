/**
 * DPO in a browser tab: the same graphs as `dpo train` (buildDpoLoss, TrainStep, Scorer,
 * Generator), run by onnxruntime-web on WebGPU or wasm, with the model and the labelled pairs
 * in memory. The whole labelled set is one batch per step (a page labels a handful of pairs).
 *
 * LoRA by default (PEFT's r, alpha and dropout, LORA_DEFAULTS, on the family's default target
 * modules; `dpo train --lora` trains the same adapters): the base weights are frozen graph inputs
 * and only the adapters and their AdamW state train. The reference is the base with the adapters
 * off: the same compiled graphs fed the initial adapters, whose B is zero (PEFT's init), so the
 * adapter term is exactly zero; no second copy of the model is held. `full: true` trains every
 * weight instead (small models: weights, a reference copy and AdamW state, 16 bytes per parameter).
 * The result comes out as files made in memory: a PEFT adapter folder (adapterFiles) or a
 * Hugging Face model folder (modelFiles; with LoRA, the adapters merged into the base).
 */
import { collatePreferences, type PreferenceBatch } from '../data/collate.js';
import type { Device, DeviceRequest } from '../engine/device-types.js';
import type { HostTensor, RuntimeOptions } from '../engine/runtime.js';
import { float32Params, TrainStep, type ParamSpec } from '../engine/train-step.js';
import { DpoError } from '../errors.js';
import { Generator } from '../generate/generator.js';
import { DropoutSites } from '../models/dropout.js';
import type { ModelParams } from '../models/linear.js';
import { adapterConfigJson, applyLora, initLora, loraAdapterTensors, loraConfig, loraParameters, mergeLora, type LoraConfig } from '../models/lora.js';
import { createModel } from '../models/registry.js';
import type { CausalLM } from '../models/types.js';
import { Scorer, type ParamTransform } from '../scoring/scorer.js';
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
  /**
   * AdamW learning rate (default for a few labelled pairs and a few steps: 1e-3 with LoRA, 1e-4
   * with full fine-tuning; on the shipped model, 10 LoRA steps at 1e-4 move the loss by 0.004).
   */
  learningRate?: number;
  /** Id that pads sequences (default: config's eos_token_id, else 0). */
  padTokenId?: number;
  /**
   * LoRA settings over PEFT's defaults (r 8, alpha 8, dropout 0; target modules: the family's
   * default). LoRA is on unless `full` is set.
   */
  lora?: Partial<Pick<LoraConfig, 'r' | 'alpha' | 'dropout' | 'targetModules'>>;
  /** Full fine-tuning instead of LoRA (small models only). */
  full?: boolean;
  /** Seed of the LoRA init and LoRA dropout (default 0). */
  seed?: number;
  /** base_model_name_or_path written into the adapter's adapter_config.json (the base model's folder or hub id). */
  baseModelNameOrPath?: string;
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
const LORA_DROPOUT_SEED_OFFSET = 0x10a;
const encodeJson = (value: unknown): Uint8Array => new TextEncoder().encode(`${JSON.stringify(value, null, 2)}\n`);

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
    /** The weights before training (the reference; with LoRA, the base and the initial adapters, whose B is zero). */
    readonly reference: ReadonlyMap<string, Float32Array>,
    /** The LoRA config (undefined: full fine-tuning). */
    readonly lora: LoraConfig | undefined,
    /** Model weights from the graph inputs (LoRA: adapters on, no dropout). */
    private readonly transform: ParamTransform | undefined,
    private readonly baseModelNameOrPath: string | null,
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
    if (options.full && options.lora) throw new DpoError('BrowserDpo: give lora settings or full, not both');
    const lora = options.full ? undefined : loraConfig(model.modelType, options.lora);
    const seed = options.seed ?? 0;
    const reference = new Map<string, Float32Array>();
    const specs: ParamSpec[] = model.parameters().map((p) => {
      const t = found.get(p.name);
      if (!t) throw new DpoError(`model.safetensors: no tensor for parameter "${p.name}"`);
      const n = p.shape.reduce((a, b) => a * b, 1);
      if (t.data.length !== n) throw new DpoError(`model.safetensors: "${p.name}" has ${t.data.length} values, its shape [${p.shape.join(', ')}] needs ${n}`);
      reference.set(p.name, t.data);
      // LoRA: the base is frozen, so the step reads the loaded arrays themselves (no copy).
      return { name: p.name, shape: p.shape, data: lora ? t.data : Float32Array.from(t.data), trainable: !lora };
    });
    let transform: ParamTransform | undefined;
    let trainParams = (params: ModelParams): ModelParams => params;
    if (lora) {
      const init = initLora(model, lora, seed);
      for (const p of loraParameters(model, lora)) {
        const data = init.get(p.name) as Float32Array;
        reference.set(p.name, data);
        specs.push({ name: p.name, shape: p.shape, data: Float32Array.from(data), trainable: true });
      }
      transform = (_g, params) => applyLora(model, params, params, lora);
      trainParams = (params) =>
        applyLora(model, params, params, lora, lora.dropout > 0 ? { dropout: new DropoutSites(seed + LORA_DROPOUT_SEED_OFFSET) } : {});
    }
    const beta = options.beta ?? 0.1;
    const eos = options.config.eos_token_id;
    const padTokenId = options.padTokenId ?? (typeof eos === 'number' ? eos : 0);
    const lossOptions = { lossTypes: ['sigmoid'] as const, beta };
    const step = await TrainStep.create(
      specs,
      (g, params) => buildDpoLoss(g, model, trainParams(params), lossOptions, 2, false),
      { name: 'adamw', weightDecay: 0, maxGradNorm: 1 },
      runtime,
    );
    const base = options.baseModelNameOrPath ?? null;
    return new BrowserDpo(model, device, options.config, specs, reference, lora, transform, base, step, runtime, beta, options.learningRate ?? (lora ? 1e-3 : 1e-4), padTokenId);
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
    return float32Params(this.step.parameters());
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
    this.scorer ??= Scorer.create(this.model, this.specs, this.runtime, this.transform);
    const shapes = new Map(this.specs.map((s) => [s.name, s.shape]));
    return (await (await this.scorer).score(batch, await this.weightsOf(which), shapes)).logps;
  }

  /** Completions (token ids) of each prompt under the trained or the reference weights. */
  async generate(
    prompts: readonly (readonly number[])[],
    options: { which: 'policy' | 'reference'; maxNewTokens: number; seed?: number; doSample?: boolean; temperature?: number; topK?: number; eosTokenIds?: readonly number[] },
  ): Promise<number[][]> {
    this.generator ??= Generator.create(this.model, { runtime: this.runtime, inputs: this.specs, transform: this.transform });
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

  /** The trained LoRA adapters (A and B matrices by PEFT name); throws with full fine-tuning. */
  async adapters(): Promise<Map<string, Float32Array>> {
    const { lora } = this;
    if (!lora) throw new DpoError('adapters: this trainer fine-tunes every weight (full), it has no LoRA adapters');
    const weights = await this.weights();
    return new Map(loraParameters(this.model, lora).map((p) => [p.name, weights.get(p.name) as Float32Array]));
  }

  /**
   * The trained adapters as a PEFT adapter folder's files: adapter_config.json (naming
   * `baseModelNameOrPath`) and a float32 adapter_model.safetensors, as `dpo train --lora` saves
   * them; `dpo generate --model FOLDER` and PEFT's `from_pretrained` load them onto the base.
   */
  async adapterFiles(): Promise<OutputFile[]> {
    const adapters = await this.adapters();
    const lora = this.lora as LoraConfig;
    return [
      { name: 'adapter_config.json', bytes: encodeJson(adapterConfigJson(this.model, lora, this.baseModelNameOrPath)) },
      { name: 'adapter_model.safetensors', bytes: safetensorsBytes(loraAdapterTensors(this.model, adapters, lora)) },
    ];
  }

  /**
   * The trained model as a Hugging Face folder's files: config.json and a float32
   * model.safetensors (with LoRA, the adapters merged into the base weights).
   */
  async modelFiles(): Promise<OutputFile[]> {
    const all = await this.weights();
    const params = this.model.parameters();
    let weights = new Map(params.map((p) => [p.name, all.get(p.name) as Float32Array]));
    if (this.lora) weights = mergeLora(this.model, weights, await this.adapters(), this.lora);
    const tensors = new Map(params.map((p) => [p.name, { data: weights.get(p.name) as Float32Array, shape: [...p.shape] }]));
    const config = { ...this.config, torch_dtype: 'float32' };
    return [
      { name: 'config.json', bytes: encodeJson(config) },
      { name: 'model.safetensors', bytes: safetensorsBytes(tensors) },
    ];
  }

  /** What the page downloads: the adapter folder's files with LoRA, else the model folder's. */
  outputFiles(): Promise<OutputFile[]> {
    return this.lora ? this.adapterFiles() : this.modelFiles();
  }

  async release(): Promise<void> {
    await this.step.release();
    if (this.scorer) await (await this.scorer).release();
    if (this.generator) await (await this.generator).release();
  }
}
