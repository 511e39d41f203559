/**
 * model_type (config.json) -> model builder, and what each family supports. `dpo models`, LoRA's
 * default targets and the README table all read this one list.
 */
import { DpoError } from '../errors.js';
import { Gemma2 } from './gemma2.js';
import { Gemma3Text } from './gemma3.js';
import { GPT2 } from './gpt2.js';
import { GPTJ } from './gptj.js';
import { GPTNeoX } from './gpt-neox.js';
import { Llama } from './llama.js';
import { Phi3 } from './phi3.js';
import { Qwen3 } from './qwen3.js';
import { SmolLM3 } from './smollm3.js';
import type { CausalLM } from './types.js';

type Raw = Readonly<Record<string, unknown>>;

export interface ModelTypeInfo {
  /** config.json's model_type. */
  modelType: string;
  /** The transformers class whose forward this family reproduces. */
  transformersClass: string;
  build: (config: Raw) => CausalLM;
  /** Roles (PEFT module names) of every linear projection LoRA can adapt. */
  linearRoles: readonly string[];
  /** LoRA target modules when none are given: PEFT's default for the model type (our choice where PEFT has none). */
  loraDefaultTargets: readonly string[];
  /** Which layers attend through a sliding window, in words ('' when the family has none). */
  slidingWindow: string;
  /** Position encoding, in words. */
  positions: string;
  /** Generation keeps keys/values between steps (`ForwardInputs.past`); sliding windows are masked in the cached steps too. */
  kvCache: boolean;
}

const LLAMA_ROLES = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as const;
const Q_V = ['q_proj', 'v_proj'] as const;

const MODEL_TYPES: readonly ModelTypeInfo[] = [
  {
    modelType: 'gpt2',
    transformersClass: 'GPT2LMHeadModel',
    build: (c) => new GPT2(c),
    linearRoles: ['c_attn', 'attn.c_proj', 'c_fc', 'mlp.c_proj'],
    loraDefaultTargets: ['c_attn'],
    slidingWindow: '',
    positions: 'learned (n_positions)',
    kvCache: true,
  },
  {
    modelType: 'gptj',
    transformersClass: 'GPTJForCausalLM',
    build: (c) => new GPTJ(c),
    linearRoles: ['q_proj', 'k_proj', 'v_proj', 'out_proj', 'fc_in', 'fc_out'],
    loraDefaultTargets: Q_V,
    slidingWindow: '',
    positions: 'RoPE interleaved, partial (rotary_dim)',
    kvCache: true,
  },
  {
    modelType: 'gpt_neox',
    transformersClass: 'GPTNeoXForCausalLM',
    build: (c) => new GPTNeoX(c),
    linearRoles: ['query_key_value', 'dense', 'dense_h_to_4h', 'dense_4h_to_h'],
    loraDefaultTargets: ['query_key_value'],
    slidingWindow: '',
    positions: 'RoPE, partial (rotary_pct), rope_scaling',
    kvCache: true,
  },
  {
    modelType: 'llama',
    transformersClass: 'LlamaForCausalLM',
    build: (c) => new Llama(c, 'llama'),
    linearRoles: LLAMA_ROLES,
    loraDefaultTargets: Q_V,
    slidingWindow: '',
    positions: 'RoPE, rope_scaling',
    kvCache: true,
  },
  {
    modelType: 'mistral',
    transformersClass: 'MistralForCausalLM',
    build: (c) => new Llama(c, 'mistral'),
    linearRoles: LLAMA_ROLES,
    loraDefaultTargets: Q_V,
    slidingWindow: 'every layer (sliding_window)',
    positions: 'RoPE, rope_scaling',
    kvCache: true,
  },
  {
    modelType: 'qwen2',
    transformersClass: 'Qwen2ForCausalLM',
    build: (c) => new Llama(c, 'qwen2'),
    linearRoles: LLAMA_ROLES,
    loraDefaultTargets: Q_V,
    slidingWindow: 'layers >= max_window_layers when use_sliding_window (or layer_types)',
    positions: 'RoPE, rope_scaling',
    kvCache: true,
  },
  {
    modelType: 'qwen3',
    transformersClass: 'Qwen3ForCausalLM',
    build: (c) => new Qwen3(c),
    linearRoles: LLAMA_ROLES,
    loraDefaultTargets: Q_V,
    slidingWindow: 'layers >= max_window_layers when use_sliding_window (or layer_types)',
    positions: 'RoPE, rope_scaling',
    kvCache: true,
  },
  {
    modelType: 'smollm3',
    transformersClass: 'SmolLM3ForCausalLM',
    build: (c) => new SmolLM3(c),
    linearRoles: LLAMA_ROLES,
    loraDefaultTargets: Q_V, // PEFT has no default for smollm3; Llama's
    slidingWindow: 'NoPE layers when use_sliding_window (or layer_types)',
    positions: 'RoPE except NoPE layers (no_rope_layers), rope_scaling',
    kvCache: true,
  },
  {
    modelType: 'gemma2',
    transformersClass: 'Gemma2ForCausalLM',
    build: (c) => new Gemma2(c),
    linearRoles: LLAMA_ROLES,
    loraDefaultTargets: Q_V,
    slidingWindow: 'every other layer (or layer_types)',
    positions: 'RoPE, rope_scaling',
    kvCache: true,
  },
  {
    modelType: 'gemma3_text',
    transformersClass: 'Gemma3ForCausalLM',
    build: (c) => new Gemma3Text(c),
    linearRoles: LLAMA_ROLES,
    loraDefaultTargets: Q_V,
    slidingWindow: '5 of every sliding_window_pattern (6) layers (or layer_types)',
    positions: 'RoPE: rope_local_base_freq on sliding layers, rope_theta + rope_scaling on global ones',
    kvCache: true,
  },
  {
    modelType: 'phi3',
    transformersClass: 'Phi3ForCausalLM',
    build: (c) => new Phi3(c),
    linearRoles: ['qkv_proj', 'o_proj', 'gate_up_proj', 'down_proj'],
    loraDefaultTargets: ['qkv_proj'], // PEFT has no default for phi3; the fused attention input
    slidingWindow: 'every layer (sliding_window)',
    positions: 'RoPE, partial (partial_rotary_factor), longrope/su',
    kvCache: true,
  },
];

const BY_TYPE = new Map(MODEL_TYPES.map((m) => [m.modelType, m]));

/** Every supported model type with what it supports, sorted by model_type. */
export function modelTypes(): ModelTypeInfo[] {
  return [...MODEL_TYPES].sort((a, b) => (a.modelType < b.modelType ? -1 : 1));
}

export function modelTypeInfo(modelType: string): ModelTypeInfo | undefined {
  return BY_TYPE.get(modelType);
}

export function supportedModelTypes(): string[] {
  return modelTypes().map((m) => m.modelType);
}

/** Builds the model a config.json describes; an unknown model_type lists the supported ones. */
export function createModel(config: Raw): CausalLM {
  const type = config.model_type;
  const info = typeof type === 'string' ? BY_TYPE.get(type) : undefined;
  if (!info) {
    throw new DpoError(`config.json: model_type ${JSON.stringify(type)} is not supported (supported: ${supportedModelTypes().join(', ')})`);
  }
  return info.build(config);
}
