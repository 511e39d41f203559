/**
 * Reward models: a causal LM body with a scalar head, as transformers' *ForSequenceClassification
 * with `num_labels: 1` (the reward model of the RLHF pipeline the DPO paper replaces).
 *
 * r(x, y) = score.weight · h_last, where h_last is the final hidden state (after the last norm)
 * of the sequence's last token that is not padding. The head is `score.weight` [1, hidden] with
 * no bias, exactly as GPT2/GPTJ/GPTNeoX/Llama/Qwen2/MistralForSequenceClassification define it.
 *
 * Which token is "last": transformers takes the rightmost token whose id differs from
 * `config.pad_token_id`. dpo-ts right-pads, so it starts from index (attention-mask sum - 1) and,
 * like transformers, steps back over trailing ids equal to the pad id. With distinct pad and EOS
 * tokens that is the completion's EOS; when the pad token IS the EOS token (GPT-2) it is the token
 * before the EOS, which is what transformers would read from the same ids. Either way a saved
 * model scores the same in transformers as here, and padding never changes a reward.
 *
 * Mean-zero rewards (the paper normalises rewards to mean 0 over prompts): the head has no bias,
 * so a constant shift cannot live in the weights transformers reads without altering base
 * weights. The trained head is saved as trained and the shift is stored next to it in
 * config.json as `reward_offset` (the mean raw reward over the training completions):
 * normalised reward = score.weight · h_last - reward_offset. transformers keeps the key as
 * `model.config.reward_offset` (it ignores it when computing logits, so Python users subtract it
 * themselves); `dpo reward score` and {@link RewardScorer} apply it.
 */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { PreferenceBatch } from '../data/collate.js';
import { Rng } from '../data/rng.js';
import { Graph, type Tensor } from '../engine/graph.js';
import * as op from '../engine/ops.js';
import { linearT } from '../engine/nn.js';
import { CompiledGraph, type HostTensor, type RuntimeOptions } from '../engine/runtime.js';
import { DpoError } from '../errors.js';
import type { FloatOutputDtype } from '../io/dtypes.js';
import { openCheckpoint, saveCheckpoint, type CheckpointTensorInfo } from '../io/hf-folder.js';
import { checkpointDtype, withStoredDtype } from '../io/save-dtype.js';
import { resolveModel } from '../io/hub.js';
import type { JsonObject } from '../io/json-file.js';
import type { Float32Tensor } from '../io/safetensors.js';
import { loadTokenizer, type HfTokenizer } from '../io/tokenizer.js';
import { createModel } from '../models/registry.js';
import type { CausalLM } from '../models/types.js';
import type { DropoutSites } from '../models/dropout.js';
import type { ParamTransform } from './scorer.js';

export const SCORE_WEIGHT = 'score.weight';
export const REWARD_OFFSET_KEY = 'reward_offset';

/** transformers' sequence-classification class per model_type. */
export const SEQUENCE_CLASSIFICATION_ARCHITECTURES: Readonly<Record<string, string>> = {
  gpt2: 'GPT2ForSequenceClassification',
  gptj: 'GPTJForSequenceClassification',
  gpt_neox: 'GPTNeoXForSequenceClassification',
  llama: 'LlamaForSequenceClassification',
  qwen2: 'Qwen2ForSequenceClassification',
  mistral: 'MistralForSequenceClassification',
};

export function sequenceClassificationArchitecture(modelType: string): string {
  const a = SEQUENCE_CLASSIFICATION_ARCHITECTURES[modelType];
  if (!a) throw new DpoError(`reward models: no sequence-classification architecture known for model_type '${modelType}'`);
  return a;
}

/** True when a config.json describes a sequence-classification (reward) model. */
export function isRewardModelConfig(config: Readonly<Record<string, unknown>>): boolean {
  const arch = config.architectures;
  return Array.isArray(arch) && arch.some((a) => typeof a === 'string' && a.endsWith('ForSequenceClassification'));
}

/**
 * The parameters the transformer body reads (embeddings to final norm): the base-model keys of a
 * *ForSequenceClassification checkpoint. An untied LM head (lm_head / embed_out) is not among them.
 */
export function bodyParameterNames(model: CausalLM): string[] {
  const g = new Graph('body');
  const params: Record<string, Tensor> = {};
  for (const p of model.parameters()) params[p.name] = g.input(p.name, 'float32', p.shape);
  const { hidden } = model.forward(params, { inputIds: g.input('input_ids', 'int64', ['b', 't']), attentionMask: g.input('attention_mask', 'float32', ['b', 't']) });
  const seen = new Set<number>();
  const used = new Set<string>();
  const stack: Tensor[] = [hidden];
  while (stack.length) {
    const t = stack.pop() as Tensor;
    if (seen.has(t.id)) continue;
    seen.add(t.id);
    if (t.kind === 'input' && t.name) used.add(t.name);
    if (t.node) for (const x of t.node.inputs) stack.push(x);
  }
  return model.parameters().map((p) => p.name).filter((n) => used.has(n));
}

/** A head [1, hidden] drawn from N(0, std^2) (transformers' _init_weights with initializer_range). */
export function initScoreHead(hiddenSize: number, std: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  const w = new Float32Array(hiddenSize);
  for (let i = 0; i < hiddenSize; i += 2) {
    const u = Math.max(rng.nextFloat(), 1e-12);
    const v = rng.nextFloat();
    const r = Math.sqrt(-2 * Math.log(u));
    w[i] = std * r * Math.cos(2 * Math.PI * v);
    if (i + 1 < hiddenSize) w[i + 1] = std * r * Math.sin(2 * Math.PI * v);
  }
  return w;
}

/** Graph inputs of a reward graph. */
export interface RewardInputs {
  inputIds: Tensor;
  attentionMask: Tensor;
  /** int64 [N]: flat index n*T + t of each sequence's last non-padding token. */
  lastPositions: Tensor;
}

export function declareRewardInputs(g: Graph): RewardInputs {
  return {
    inputIds: g.input('input_ids', 'int64', ['sequences', 'seq']),
    attentionMask: g.input('attention_mask', 'float32', ['sequences', 'seq']),
    lastPositions: g.input('last_positions', 'int64', ['sequences']),
  };
}

/** [N] raw rewards score.weight · h_last (no offset). `params` must hold `score.weight`. */
export function rewardScores(model: CausalLM, params: Readonly<Record<string, Tensor>>, inputs: RewardInputs, dropout?: DropoutSites): Tensor {
  const { hidden } = model.forward(params, { inputIds: inputs.inputIds, attentionMask: inputs.attentionMask, dropout });
  const last = op.gather(op.reshape(hidden, [-1, model.config.hiddenSize]), inputs.lastPositions);
  return op.reshape(linearT(last, params[SCORE_WEIGHT]), [-1]);
}

/**
 * Index (0-based, within the sequence) of each sequence's last token as transformers picks it:
 * the rightmost real token whose id is not the pad id (the last real token when all are).
 */
export function lastTokenIndices(batch: PreferenceBatch, padTokenId: number): Int32Array {
  const { numSequences: N, seqLen: T, attentionMask, inputIds } = batch;
  const pad = BigInt(padTokenId);
  const out = new Int32Array(N);
  for (let n = 0; n < N; n++) {
    let len = 0;
    for (let t = 0; t < T; t++) len += attentionMask[n * T + t];
    let i = len - 1;
    while (i > 0 && inputIds[n * T + i] === pad) i--;
    out[n] = inputIds[n * T + i] === pad ? len - 1 : i;
  }
  return out;
}

export function rewardFeeds(batch: PreferenceBatch, padTokenId: number): Record<string, HostTensor> {
  const { numSequences: n, seqLen: t } = batch;
  const idx = lastTokenIndices(batch, padTokenId);
  const last = new BigInt64Array(n);
  for (let i = 0; i < n; i++) last[i] = BigInt(i * t + idx[i]);
  return {
    input_ids: { data: batch.inputIds, dims: [n, t] },
    attention_mask: { data: batch.attentionMask, dims: [n, t] },
    last_positions: { data: last, dims: [n] },
  };
}

/** A loaded reward model. */
export interface RewardModel {
  model: CausalLM;
  /** Body parameters by name plus `score.weight`. */
  weights: Map<string, Float32Array>;
  /** Subtracted from raw rewards (config.json `reward_offset`, 0 when absent). */
  offset: number;
  /** The pad id transformers uses to find the last token (config.json `pad_token_id`). */
  padTokenId: number;
  dir: string;
  config: JsonObject;
  tokenizer?: HfTokenizer;
  /** The dtype the checkpoint stores its weights in (what `--save-dtype auto` saves again). */
  dtype: FloatOutputDtype;
}

/** Parameter shapes of a reward model: body parameters and the head. */
export function rewardParameterShapes(model: CausalLM): Map<string, readonly number[]> {
  const body = new Set(bodyParameterNames(model));
  const shapes = new Map<string, readonly number[]>();
  for (const p of model.parameters()) if (body.has(p.name)) shapes.set(p.name, p.shape);
  shapes.set(SCORE_WEIGHT, [1, model.config.hiddenSize]);
  return shapes;
}

/**
 * Loads a reward model saved in the Hugging Face sequence-classification layout (by
 * {@link saveRewardModel} or transformers): base-model keys + `score.weight` [1, hidden].
 */
export async function loadRewardModel(ref: string): Promise<RewardModel> {
  const dir = (await resolveModel(ref)).dir;
  const ckpt = await openCheckpoint(dir);
  const weights = new Map<string, Float32Array>();
  const stored: CheckpointTensorInfo[] = [];
  let model: CausalLM;
  try {
    try {
      model = createModel(ckpt.config);
    } catch (e) {
      if (e instanceof DpoError) throw e;
      throw new DpoError(`${join(dir, 'config.json')}: ${(e as Error).message}`);
    }
    const shapes = rewardParameterShapes(model);
    for (const key of ckpt.names()) {
      const name = key === SCORE_WEIGHT ? key : model.canonicalKey(key);
      const shape = name === undefined ? undefined : shapes.get(name);
      if (!name || !shape || weights.has(name)) continue;
      const found = ckpt.info(key).shape;
      if (found.length !== shape.length || found.some((d, i) => d !== shape[i])) {
        const hint = name === SCORE_WEIGHT ? ' (a reward model has num_labels 1)' : '';
        throw new DpoError(`${dir}: tensor "${key}" has shape [${found.join(', ')}], expected [${shape.join(', ')}]${hint}`);
      }
      weights.set(name, (await ckpt.read(key)).data);
      stored.push(ckpt.info(key));
    }
    if (!weights.has(SCORE_WEIGHT)) {
      throw new DpoError(`${dir}: no "score.weight": not a reward (sequence-classification) model; train one with \`dpo reward train\``);
    }
    const missing = [...shapes.keys()].filter((n) => !weights.has(n));
    if (missing.length) throw new DpoError(`${dir}: checkpoint is missing ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ` and ${missing.length - 5} more` : ''}`);
  } finally {
    await ckpt.close();
  }
  const hasTokenizer = (await stat(join(dir, 'tokenizer.json')).catch(() => undefined))?.isFile();
  const tokenizer = hasTokenizer ? await loadTokenizer(dir) : undefined;
  const cfg = ckpt.config;
  const offset = typeof cfg[REWARD_OFFSET_KEY] === 'number' ? (cfg[REWARD_OFFSET_KEY] as number) : 0;
  const padFromConfig = typeof cfg.pad_token_id === 'number' ? cfg.pad_token_id : undefined;
  const padTokenId = padFromConfig ?? tokenizer?.padTokenId ?? model.config.eosTokenId;
  if (typeof padTokenId !== 'number') throw new DpoError(`${dir}: config.json has no pad_token_id (needed to find each sequence's last token)`);
  return { model, weights, offset, padTokenId, dir, config: cfg, tokenizer, dtype: checkpointDtype(stored, cfg) };
}

export interface SaveRewardModelOptions {
  model: CausalLM;
  /** Body parameters (others, e.g. an untied lm_head, are left out) and `score.weight`. */
  weights: ReadonlyMap<string, Float32Array>;
  offset: number;
  padTokenId: number;
  /** Tokenizer files are copied from here. */
  tokenizerDir?: string;
  /** Stored dtype (default F32; `resolveSaveDtype` turns --save-dtype into one). */
  dtype?: FloatOutputDtype;
  /** Largest weight file in bytes; past it the weights are sharded (default 2 GB). */
  maxShardSize?: number;
}

/** The config.json of a saved reward model (torch_dtype: the stored dtype). */
export function rewardModelConfig(model: CausalLM, offset: number, padTokenId: number, dtype: FloatOutputDtype = 'F32'): JsonObject {
  const raw = { ...(model.config.raw as JsonObject) };
  delete raw[REWARD_OFFSET_KEY];
  return withStoredDtype({
    ...raw,
    architectures: [sequenceClassificationArchitecture(model.modelType)],
    num_labels: 1,
    id2label: { '0': 'LABEL_0' },
    label2id: { LABEL_0: 0 },
    pad_token_id: padTokenId,
    [REWARD_OFFSET_KEY]: offset,
  }, dtype);
}

/** Writes `dir` in the Hugging Face sequence-classification layout (atomically). */
export async function saveRewardModel(dir: string, o: SaveRewardModelOptions): Promise<void> {
  const shapes = rewardParameterShapes(o.model);
  const tensors = new Map<string, Float32Tensor>();
  for (const [name, shape] of shapes) {
    const data = o.weights.get(name);
    if (!data) throw new DpoError(`saveRewardModel: no value for "${name}"`);
    tensors.set(name, { data, shape: [...shape] });
  }
  await saveCheckpoint(dir, {
    config: rewardModelConfig(o.model, o.offset, o.padTokenId, o.dtype),
    tensors,
    tokenizerDir: o.tokenizerDir,
    dtype: o.dtype,
    maxShardSize: o.maxShardSize,
  });
}

/** A compiled reward graph: raw rewards of a batch under given weights. */
export class RewardScorer {
  private constructor(
    private readonly compiled: CompiledGraph,
    private readonly model: CausalLM,
    private readonly shapes: ReadonlyMap<string, readonly number[]>,
  ) {}

  /** `inputs` names every weight input (body parameters, `score.weight`, adapters...). */
  static async create(
    model: CausalLM,
    inputs: ReadonlyMap<string, readonly number[]>,
    runtime: RuntimeOptions = {},
    transform?: ParamTransform,
  ): Promise<RewardScorer> {
    const g = new Graph('reward');
    let params: Record<string, Tensor> = {};
    for (const [name, shape] of inputs) params[name] = g.input(name, 'float32', shape);
    if (transform) params = transform(g, params);
    const rewards = rewardScores(model, params, declareRewardInputs(g));
    return new RewardScorer(await CompiledGraph.compile({ rewards }, runtime), model, inputs);
  }

  /** [N] raw rewards (sequence n = k*B + i). */
  async score(batch: PreferenceBatch, weights: ReadonlyMap<string, Float32Array>, padTokenId: number): Promise<Float64Array> {
    this.model.checkSequenceLength?.(batch.seqLen);
    const feeds = rewardFeeds(batch, padTokenId);
    for (const [name, shape] of this.shapes) {
      const data = weights.get(name);
      if (!data) throw new Error(`RewardScorer: no weights for "${name}"`);
      feeds[name] = { data, dims: shape };
    }
    return Float64Array.from((await this.compiled.run(feeds)).rewards.data as Float32Array);
  }

  release(): Promise<void> {
    return this.compiled.release();
  }
}
