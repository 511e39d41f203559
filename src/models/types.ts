import type { Tensor } from '../engine/graph.js';
import type { DropoutSites } from './dropout.js';
import type { ModelParams } from './linear.js';

/** A parameter as the checkpoint stores it: transformers' key name and shape. */
export interface ParamInfo {
  name: string;
  shape: number[];
}

/** One layer's attention keys and values: [batch, kv_heads, positions, head_dim]. */
export interface KeyValue {
  key: Tensor;
  value: Tensor;
}

export interface ForwardInputs {
  /** int64 [batch, seq]. */
  inputIds: Tensor;
  /**
   * float [batch, past + seq] of 0/1: 0 marks padding keys. Omitted means every key is real.
   * Same dtype as the parameters. Or, for padding-free (packed) batches without a cache: int64
   * [batch, seq] segment ids (1, 2, ... per packed sequence, 0 = padding); each token then attends
   * only to its own sequence, and `positionIds` should restart at every sequence (data/pack.ts).
   */
  attentionMask?: Tensor;
  /** int64 [batch, seq]; omitted means 0..seq-1 (offset by past length). */
  positionIds?: Tensor;
  /**
   * Prefix sharing (with int64 segment ids as `attentionMask` only): int64 [batch, seq], 0 for a
   * segment's shared prompt, k >= 1 for its completion k. A token of completion k attends to the
   * prompt and to earlier tokens of completion k only, and `positionIds` of every completion
   * continue from the prompt's end, so each completion's hidden states are those of the unshared
   * sequence prompt ++ completion k (data/pack.ts, packSharedPrefix).
   */
  branchIds?: Tensor;
  /** Cached keys/values of earlier positions, one per layer (generation). */
  past?: readonly KeyValue[];
  /** Training with the config's dropout probabilities (omitted: dropout off, as TRL's default). */
  dropout?: DropoutSites;
}

export interface ForwardOutputs {
  /** Final hidden states after the last norm, [batch, seq, hidden]. */
  hidden: Tensor;
  /** Keys/values including this call's positions, one per layer. */
  present: KeyValue[];
}

/**
 * A causal LM as a graph builder. It knows nothing of files: it is made from a parsed config,
 * names its parameters with the checkpoint's keys, and builds forward graphs from parameter
 * tensors the caller declares (as graph inputs, constants or LoRA-adapted expressions).
 */
export interface CausalLM {
  readonly modelType: string;
  readonly config: CausalLMConfig;
  /** Parameters in checkpoint key names (tied weights appear once). */
  parameters(): ParamInfo[];
  /**
   * Maps a key as found in a checkpoint file to this model's parameter name, or undefined for
   * buffers that are not parameters (e.g. GPT-2's attn.bias). Accepts the prefixes different
   * save paths produce.
   */
  canonicalKey(fileKey: string): string | undefined;
  /**
   * Runs the transformer body: embeddings to final norm. Every linear projection listed by
   * `linearModules()` goes through `projection` (linear.ts), so adapters the params carry apply.
   */
  forward(params: ModelParams, inputs: ForwardInputs): ForwardOutputs;
  /** Vocabulary logits for hidden states [..., hidden] -> [..., vocab]. */
  logits(params: ModelParams, hidden: Tensor): Tensor;
  /** Names of the linear projections LoRA may adapt: 'q', 'v', ... mapped to weight keys per layer. */
  linearModules(): LinearModule[];
  /**
   * Throws a DpoError when this model cannot attend over `n` positions (cached + new), e.g.
   * beyond GPT-2's learned position table or Mistral's sliding window (not implemented). Shapes
   * are dynamic, so graphs cannot check this: trainers and generators call it before running.
   */
  checkSequenceLength?(n: number): void;
}

/** A linear projection of the model, for LoRA: which weight key, how it is stored. */
export interface LinearModule {
  /** PEFT-style module path without '.weight', e.g. 'transformer.h.0.attn.c_attn'. */
  path: string;
  /** Short role name used for target selection: 'q_proj', 'v_proj', 'c_attn', 'fc_in', ... */
  role: string;
  weight: string;
  /** 'in_out' (GPT-2 Conv1D, [in, out]) or 'out_in' (torch Linear, [out, in]). */
  layout: 'in_out' | 'out_in';
  inFeatures: number;
  outFeatures: number;
}

/** Normalised fields every family reads from config.json, plus the raw object. */
export interface CausalLMConfig {
  modelType: string;
  vocabSize: number;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  numKeyValueHeads: number;
  headDim: number;
  maxPositions: number;
  tieWordEmbeddings: boolean;
  bosTokenId?: number;
  eosTokenId?: number | number[];
  padTokenId?: number;
  /** config.json as read. */
  raw: Readonly<Record<string, unknown>>;
}
