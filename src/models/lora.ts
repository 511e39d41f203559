/**
 * LoRA adapters (Hu et al. 2021) as PEFT implements them, on top of any `CausalLM`.
 *
 * An adapted projection computes y = x W_effᵀ with W_eff = W + (alpha / r) · B A, where A [r, in]
 * and B [out, r] are the trainable adapter matrices and W stays frozen. Names, shapes,
 * initialisation and the saved format are PEFT's, so adapters move freely between dpo-ts and
 * PEFT (`PeftModel.from_pretrained`).
 *
 * Mechanism: as PEFT, on the activation path: y = x Wᵀ (+ b) + scale · (dropout(x) Aᵀ) Bᵀ,
 * added by the models' shared `projection` hook (linear.ts) for each adapted module. W is never
 * rebuilt, so the backward of an adapted projection computes dx = dy W and the small adapter
 * gradients, but no weight-sized gradient for W; frozen weights get no optimizer state, and the
 * adapter's input can be dropped out (LoRA dropout, applied in training graphs only). The extra
 * work per adapted module is two skinny GEMMs (rows·in·r + rows·r·out) forward and about twice
 * that backward.
 *
 * `mergeLora` folds trained adapters into full weights (W + scale · B A, transposed for GPT-2's
 * Conv1D) for saving a merged model; the activation path and the merged weights give the same
 * outputs (tested).
 *
 * The DPO reference model is the same base weights with adapters off (`enabled: false` returns
 * the base params untouched), so no second copy of the model is held.
 */
import { Rng } from '../data/rng.js';
import type { Tensor } from '../engine/graph.js';
import * as op from '../engine/ops.js';
import { DpoError } from '../errors.js';
import { ADAPTER_CONFIG_FILE } from '../io/model-files.js';
import type { JsonObject } from '../io/json-file.js';
import type { DropoutSites } from './dropout.js';
import { withLinearAdapters, type LinearAdapter, type ModelParams } from './linear.js';
import { modelTypes } from './registry.js';
import type { CausalLM, LinearModule, ParamInfo } from './types.js';

export interface LoraConfig {
  /** Rank of the update. */
  r: number;
  /** Scale numerator: the update is (alpha / r) · B A. */
  alpha: number;
  /** Dropout probability on the adapter input x (training graphs only; PEFT's lora_dropout). */
  dropout: number;
  /**
   * Module names as PEFT matches them: a module is adapted when its path equals a name or ends
   * with "." + name ("c_attn", "q_proj", "attn.c_proj"); 'all-linear' adapts every linear
   * projection except the output head.
   */
  targetModules: string[] | 'all-linear';
  /** PEFT's use_rslora: scale alpha / sqrt(r) instead of alpha / r. */
  useRslora?: boolean;
}

export { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE } from '../io/model-files.js';

/** PEFT's default target modules per model type (TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING), from the registry. */
export const DEFAULT_TARGET_MODULES: Readonly<Record<string, readonly string[]>> = Object.fromEntries(
  modelTypes().map((m) => [m.modelType, m.loraDefaultTargets]),
);

export function defaultTargetModules(modelType: string): string[] {
  const t = DEFAULT_TARGET_MODULES[modelType];
  if (!t) throw new DpoError(`LoRA: no default target modules for model_type "${modelType}"; set targetModules`);
  return [...t];
}

/**
 * The LoRA defaults of the whole package (library, trainer configs, `--lora`): PEFT's LoraConfig
 * (r 8, lora_alpha 8, lora_dropout 0), the format dpo-ts saves adapters in. (TRL's example
 * scripts pass r 16, alpha 32, dropout 0.05 instead; give those explicitly to match them.)
 */
export const LORA_DEFAULTS = { r: 8, alpha: 8, dropout: 0 } as const;

/** A LoRA config with {@link LORA_DEFAULTS} (PEFT's) and the family's default target modules. */
export function loraConfig(modelType: string, overrides: Partial<LoraConfig> = {}): LoraConfig {
  const config: LoraConfig = {
    r: overrides.r ?? LORA_DEFAULTS.r,
    alpha: overrides.alpha ?? LORA_DEFAULTS.alpha,
    dropout: overrides.dropout ?? LORA_DEFAULTS.dropout,
    targetModules: overrides.targetModules ?? defaultTargetModules(modelType),
    useRslora: overrides.useRslora ?? false,
  };
  checkLoraConfig(config);
  return config;
}

/**
 * The one check of LoRA's numbers (loraConfig, adapter_config.json and the trainer configs all
 * use it): the first bad key and what is wrong with it, or undefined.
 */
export function loraNumbersProblem(c: Pick<LoraConfig, 'r' | 'alpha' | 'dropout'>): { key: 'r' | 'alpha' | 'dropout'; message: string } | undefined {
  if (!Number.isInteger(c.r) || c.r <= 0) return { key: 'r', message: `LoRA: r must be a positive integer, got ${c.r}` };
  if (!Number.isFinite(c.alpha) || c.alpha <= 0) return { key: 'alpha', message: `LoRA: alpha must be a positive number, got ${c.alpha}` };
  if (!Number.isFinite(c.dropout) || c.dropout < 0 || c.dropout >= 1) return { key: 'dropout', message: `LoRA: dropout must be in [0, 1), got ${c.dropout}` };
  return undefined;
}

/** Validates the numbers ({@link loraNumbersProblem}) and the target list. */
export function checkLoraConfig(config: LoraConfig): void {
  const problem = loraNumbersProblem(config);
  if (problem) throw new DpoError(problem.message);
  if (config.targetModules !== 'all-linear' && (!Array.isArray(config.targetModules) || config.targetModules.length === 0)) {
    throw new DpoError(`LoRA: targetModules must be a non-empty list of module names or 'all-linear'`);
  }
}

/** The update scale: alpha / r (or alpha / sqrt(r) with rsLoRA). */
export function loraScale(config: LoraConfig): number {
  return config.useRslora ? config.alpha / Math.sqrt(config.r) : config.alpha / config.r;
}

/** One adapted projection and the PEFT names and shapes of its A and B matrices. */
export interface LoraTarget {
  module: LinearModule;
  /** "base_model.model.<path>.lora_A.weight", shape [r, in]. */
  a: string;
  /** "base_model.model.<path>.lora_B.weight", shape [out, r]. */
  b: string;
  aShape: [number, number];
  bShape: [number, number];
}

const PEFT_PREFIX = 'base_model.model.';

function matchesTarget(path: string, name: string): boolean {
  return path === name || path.endsWith(`.${name}`);
}

/** The model's linear projections the config adapts, in `linearModules()` order. */
export function loraTargets(model: CausalLM, config: LoraConfig): LoraTarget[] {
  const modules = model.linearModules();
  let chosen: LinearModule[];
  if (config.targetModules === 'all-linear') {
    chosen = modules;
  } else {
    const names = config.targetModules;
    const unmatched = names.filter((n) => !modules.some((m) => matchesTarget(m.path, n)));
    if (unmatched.length > 0) {
      const roles = [...new Set(modules.map((m) => m.path.split('.').pop()!))].sort();
      throw new DpoError(
        `LoRA: target module${unmatched.length > 1 ? 's' : ''} ${unmatched.map((n) => `"${n}"`).join(', ')} not found in ${model.modelType} (its linear modules: ${roles.join(', ')})`,
      );
    }
    chosen = modules.filter((m) => names.some((n) => matchesTarget(m.path, n)));
  }
  return chosen.map((m) => ({
    module: m,
    a: `${PEFT_PREFIX}${m.path}.lora_A.weight`,
    b: `${PEFT_PREFIX}${m.path}.lora_B.weight`,
    aShape: [config.r, m.inFeatures],
    bShape: [m.outFeatures, config.r],
  }));
}

/** Adapter parameters (PEFT names and shapes), A then B for each target. */
export function loraParameters(model: CausalLM, config: LoraConfig): ParamInfo[] {
  return loraTargets(model, config).flatMap((t) => [
    { name: t.a, shape: [...t.aShape] },
    { name: t.b, shape: [...t.bShape] },
  ]);
}

/**
 * Fresh adapters as PEFT initialises them: A from kaiming_uniform_(a=√5), i.e.
 * uniform(-1/√in, 1/√in), and B zeros (so the adapted model starts equal to the base).
 * Deterministic for a given seed.
 */
export function initLora(model: CausalLM, config: LoraConfig, seed = 0): Map<string, Float32Array> {
  checkLoraConfig(config);
  const rng = new Rng(seed);
  const out = new Map<string, Float32Array>();
  for (const t of loraTargets(model, config)) {
    const [r, inF] = t.aShape;
    const bound = 1 / Math.sqrt(inF);
    const a = new Float32Array(r * inF);
    for (let i = 0; i < a.length; i++) a[i] = (2 * rng.nextFloat() - 1) * bound;
    out.set(t.a, a);
    out.set(t.b, new Float32Array(t.bShape[0] * t.bShape[1]));
  }
  return out;
}

export interface ApplyLoraOptions {
  /** false: return the base params unchanged (the DPO reference: adapters off, no second copy). */
  enabled?: boolean;
  /**
   * Training graphs: draws LoRA dropout (config.dropout) on each adapter's input from these
   * sites. Omitted: no dropout (evaluation, generation, reference scoring).
   */
  dropout?: DropoutSites;
}

/**
 * The params record a model's forward should use: `base` carrying, for every adapted module, the
 * activation-path term scale · (dropout(x) Aᵀ) Bᵀ (linear.ts's hook). `base` and `adapters` may
 * be the same record (e.g. TrainStep's params holding frozen base weights and trainable adapters).
 */
export function applyLora(
  model: CausalLM,
  base: ModelParams,
  adapters: Readonly<Record<string, Tensor>>,
  config: LoraConfig,
  options: ApplyLoraOptions = {},
): ModelParams {
  if (options.enabled === false) return { ...base };
  checkLoraConfig(config);
  const scale = loraScale(config);
  const hooks = new Map<string, LinearAdapter>();
  for (const t of loraTargets(model, config)) {
    const a = adapters[t.a];
    const b = adapters[t.b];
    if (!base[t.module.weight]) throw new DpoError(`LoRA: base params lack "${t.module.weight}"`);
    if (!a || !b) throw new DpoError(`LoRA: adapter params lack "${!a ? t.a : t.b}"`);
    const at = op.transpose(a, [1, 0]);
    const bt = op.transpose(b, [1, 0]);
    hooks.set(t.module.path, (x) => {
      const dropped = options.dropout ? options.dropout.apply(x, config.dropout) : x;
      // Scale the rank-r intermediate: r values per row instead of out.
      return op.matmul(op.mul(op.matmul(dropped, at), scale), bt);
    });
  }
  return withLinearAdapters(base, hooks);
}

function checkLength(name: string, data: Float32Array | undefined, shape: readonly number[], what: string): Float32Array {
  if (!data) throw new DpoError(`LoRA: ${what} lack "${name}"`);
  const n = shape.reduce((p, d) => p * d, 1);
  if (data.length !== n) throw new DpoError(`LoRA: "${name}" has ${data.length} values, expected shape [${shape.join(', ')}] (${n})`);
  return data;
}

/**
 * Full weights with the adapters folded in: W + scale · B A for every target (transposed for
 * fan_in_fan_out / Conv1D). Returns a new map whose adapted entries are new arrays and whose
 * other entries are the input arrays (not copied); with `inPlace` the adapted arrays of
 * `weights` are updated instead and `weights` itself is returned.
 */
export function mergeLora(
  model: CausalLM,
  weights: Map<string, Float32Array>,
  adapters: ReadonlyMap<string, Float32Array>,
  config: LoraConfig,
  options: { inPlace?: boolean } = {},
): Map<string, Float32Array> {
  checkLoraConfig(config);
  const scale = loraScale(config);
  const out = options.inPlace ? weights : new Map(weights);
  for (const t of loraTargets(model, config)) {
    const { inFeatures: nIn, outFeatures: nOut, layout, weight } = t.module;
    const r = config.r;
    const w0 = checkLength(weight, weights.get(weight), [nIn, nOut], 'weights');
    const a = checkLength(t.a, adapters.get(t.a), t.aShape, 'adapters');
    const b = checkLength(t.b, adapters.get(t.b), t.bShape, 'adapters');
    const w = options.inPlace ? w0 : Float32Array.from(w0);
    if (layout === 'out_in') {
      // W[o, :] += Σ_k scale·B[o, k] · A[k, :]
      const row = new Float64Array(nIn);
      for (let o = 0; o < nOut; o++) {
        row.fill(0);
        for (let k = 0; k < r; k++) {
          const c = b[o * r + k];
          if (c === 0) continue;
          const off = k * nIn;
          for (let i = 0; i < nIn; i++) row[i] += c * a[off + i];
        }
        const off = o * nIn;
        for (let i = 0; i < nIn; i++) w[off + i] += scale * row[i];
      }
    } else {
      // W[i, :] += Σ_k scale·A[k, i] · Bᵀ[k, :]
      const bt = new Float64Array(r * nOut);
      for (let o = 0; o < nOut; o++) for (let k = 0; k < r; k++) bt[k * nOut + o] = b[o * r + k];
      const row = new Float64Array(nOut);
      for (let i = 0; i < nIn; i++) {
        row.fill(0);
        for (let k = 0; k < r; k++) {
          const c = a[k * nIn + i];
          const off = k * nOut;
          for (let o = 0; o < nOut; o++) row[o] += c * bt[off + o];
        }
        const off = i * nOut;
        for (let o = 0; o < nOut; o++) w[off + o] += scale * row[o];
      }
    }
    out.set(weight, w);
  }
  return out;
}

/** PEFT's fan_in_fan_out: true when the adapted weights are stored [in, out] (GPT-2's Conv1D). */
function fanInFanOut(targets: readonly LoraTarget[]): boolean {
  const layouts = new Set(targets.map((t) => t.module.layout));
  if (layouts.size > 1) throw new DpoError('LoRA: cannot save adapters over both Conv1D and Linear modules in one PEFT config');
  return layouts.has('in_out');
}

/** adapter_config.json as PEFT (0.13) writes it for a LoRA causal-LM adapter. */
export function adapterConfigJson(model: CausalLM, config: LoraConfig, baseModelNameOrPath: string | null = null): JsonObject {
  const targets = loraTargets(model, config);
  // PEFT expands 'all-linear' before saving: older versions to leaf names (written here), newer
  // ones to full module paths; PEFT's suffix matching loads both the same way.
  const targetModules =
    config.targetModules === 'all-linear'
      ? [...new Set(targets.map((t) => t.module.path.split('.').pop()!))].sort()
      : [...config.targetModules];
  return {
    alpha_pattern: {},
    auto_mapping: null,
    base_model_name_or_path: baseModelNameOrPath,
    bias: 'none',
    fan_in_fan_out: fanInFanOut(targets),
    inference_mode: true,
    init_lora_weights: true,
    layer_replication: null,
    layers_pattern: null,
    layers_to_transform: null,
    loftq_config: {},
    lora_alpha: config.alpha,
    lora_dropout: config.dropout,
    megatron_config: null,
    megatron_core: 'megatron.core',
    modules_to_save: null,
    peft_type: 'LORA',
    r: config.r,
    rank_pattern: {},
    revision: null,
    target_modules: targetModules,
    task_type: 'CAUSAL_LM',
    use_dora: false,
    use_rslora: config.useRslora ?? false,
  };
}

/**
 * The tensors of adapter_model.safetensors (PEFT's keys "base_model.model.<module>.lora_A.weight",
 * without the adapter name), checked against the targets' shapes: what the Node writer
 * (lora-files.ts) and the browser's in-memory download both store.
 */
export function loraAdapterTensors(
  model: CausalLM,
  adapters: ReadonlyMap<string, Float32Array>,
  config: LoraConfig,
): Map<string, { data: Float32Array; shape: number[] }> {
  const tensors = new Map<string, { data: Float32Array; shape: number[] }>();
  for (const t of loraTargets(model, config)) {
    tensors.set(t.a, { data: checkLength(t.a, adapters.get(t.a), t.aShape, 'adapters'), shape: [...t.aShape] });
    tensors.set(t.b, { data: checkLength(t.b, adapters.get(t.b), t.bShape, 'adapters'), shape: [...t.bShape] });
  }
  return tensors;
}

function isEmpty(v: unknown): boolean {
  return v == null || (typeof v === 'object' && Object.keys(v as object).length === 0);
}

/** Parses a PEFT adapter_config.json into a LoraConfig for `model`, rejecting what dpo-ts does not implement. */
export function parseAdapterConfig(raw: JsonObject, model: CausalLM, path = ADAPTER_CONFIG_FILE): LoraConfig {
  const bad = (msg: string) => new DpoError(`${path}: ${msg}`);
  if (raw.peft_type !== 'LORA') throw bad(`peft_type is ${JSON.stringify(raw.peft_type)}; only "LORA" adapters are supported`);
  if (raw.task_type != null && raw.task_type !== 'CAUSAL_LM') throw bad(`task_type is ${JSON.stringify(raw.task_type)}, expected "CAUSAL_LM"`);
  if (raw.use_dora === true) throw bad('DoRA adapters (use_dora: true) are not supported');
  if (raw.bias != null && raw.bias !== 'none') throw bad(`bias ${JSON.stringify(raw.bias)} is not supported (only "none")`);
  if (!isEmpty(raw.rank_pattern) || !isEmpty(raw.alpha_pattern)) throw bad('rank_pattern / alpha_pattern are not supported');
  if (!isEmpty(raw.modules_to_save)) throw bad('modules_to_save is not supported');
  if (!isEmpty(raw.layers_to_transform)) throw bad('layers_to_transform is not supported');
  const r = raw.r;
  const alpha = raw.lora_alpha ?? LORA_DEFAULTS.alpha;
  const dropout = raw.lora_dropout ?? LORA_DEFAULTS.dropout;
  if (typeof r !== 'number' || typeof alpha !== 'number' || typeof dropout !== 'number') {
    throw bad('r, lora_alpha and lora_dropout must be numbers');
  }
  let targetModules: string[] | 'all-linear';
  const tm = raw.target_modules;
  if (tm === 'all-linear') targetModules = 'all-linear';
  else if (typeof tm === 'string') {
    // PEFT: a string is a regex that must match the whole module name.
    let re: RegExp;
    try {
      re = new RegExp(`^(?:${tm})$`);
    } catch {
      throw bad(`target_modules ${JSON.stringify(tm)} is not a valid regular expression`);
    }
    targetModules = model.linearModules().filter((m) => re.test(m.path)).map((m) => m.path);
    if (targetModules.length === 0) throw bad(`target_modules ${JSON.stringify(tm)} matches no linear module of ${model.modelType}`);
  } else if (Array.isArray(tm) && tm.length > 0 && tm.every((x) => typeof x === 'string')) {
    targetModules = tm as string[];
  } else throw bad('target_modules must be a list of module names or a regular expression');
  const config: LoraConfig = { r, alpha, dropout, targetModules, useRslora: raw.use_rslora === true };
  checkLoraConfig(config);
  return config;
}
