/**
 * GPT-J, as transformers' modeling_gptj.py (GPTJForCausalLM): no position embedding; RoPE with
 * interleaved (rotate-every-two) pairing on the first `rotary_dim` dims of each head; attention
 * and MLP in parallel from one LayerNorm; untied lm_head with a bias.
 */
import type { Tensor } from '../engine/graph.js';
import * as op from '../engine/ops.js';
import { layerNorm, linearT } from '../engine/nn.js';
import { projection, type ModelParams } from './linear.js';
import { decoderLayer } from './layer-checkpoint.js';
import { DpoError } from '../errors.js';
import { activation } from './activations.js';
import { attentionMask, mergeHeads, scaledDotProductAttention, splitHeads, withPast } from './attention.js';
import { num, optNum, readCommonConfig } from './config.js';
import { defaultPositions } from './positions.js';
import { modelDropout } from './dropout.js';
import { applyRotary, ropeInverseFrequencies, rotaryTables } from './rotary.js';
import type { CausalLM, CausalLMConfig, ForwardInputs, ForwardOutputs, KeyValue, LinearModule, ParamInfo } from './types.js';

export class GPTJ implements CausalLM {
  readonly modelType = 'gptj';
  readonly config: CausalLMConfig;
  private readonly inner: number;
  private readonly eps: number;
  private readonly act: (x: Tensor) => Tensor;
  private readonly invFreq: number[];

  constructor(raw: Readonly<Record<string, unknown>>) {
    const common = readCommonConfig(raw, {
      vocabSize: 'vocab_size',
      hiddenSize: 'n_embd',
      numLayers: 'n_layer',
      numHeads: 'n_head',
      maxPositions: 'n_positions',
    });
    // GPTJConfig defaults tie_word_embeddings to false.
    this.config = { ...common, tieWordEmbeddings: raw.tie_word_embeddings === true };
    const d = this.config.hiddenSize;
    this.inner = raw.n_inner == null ? 4 * d : num(raw, 'n_inner');
    this.eps = optNum(raw, 'layer_norm_epsilon') ?? 1e-5;
    this.act = activation('gptj', typeof raw.activation_function === 'string' ? raw.activation_function : 'gelu_new');
    const rotaryDim = optNum(raw, 'rotary_dim') ?? this.config.headDim;
    if (rotaryDim > this.config.headDim) throw new DpoError(`gptj: rotary_dim ${rotaryDim} exceeds the head size ${this.config.headDim}`);
    // create_sinusoidal_positions: base 10000, dim = rotary_dim.
    this.invFreq = ropeInverseFrequencies('gptj', rotaryDim, 10000, null);
  }

  parameters(): ParamInfo[] {
    const { vocabSize: v, hiddenSize: d, numLayers } = this.config;
    const ps: ParamInfo[] = [{ name: 'transformer.wte.weight', shape: [v, d] }];
    for (let i = 0; i < numLayers; i++) {
      const h = `transformer.h.${i}`;
      ps.push(
        { name: `${h}.ln_1.weight`, shape: [d] },
        { name: `${h}.ln_1.bias`, shape: [d] },
        { name: `${h}.attn.k_proj.weight`, shape: [d, d] },
        { name: `${h}.attn.v_proj.weight`, shape: [d, d] },
        { name: `${h}.attn.q_proj.weight`, shape: [d, d] },
        { name: `${h}.attn.out_proj.weight`, shape: [d, d] },
        { name: `${h}.mlp.fc_in.weight`, shape: [this.inner, d] },
        { name: `${h}.mlp.fc_in.bias`, shape: [this.inner] },
        { name: `${h}.mlp.fc_out.weight`, shape: [d, this.inner] },
        { name: `${h}.mlp.fc_out.bias`, shape: [d] },
      );
    }
    ps.push({ name: 'transformer.ln_f.weight', shape: [d] }, { name: 'transformer.ln_f.bias', shape: [d] });
    if (!this.config.tieWordEmbeddings) ps.push({ name: 'lm_head.weight', shape: [v, d] });
    ps.push({ name: 'lm_head.bias', shape: [v] });
    return ps;
  }

  canonicalKey(fileKey: string): string | undefined {
    if (/\.attn\.(bias|masked_bias|embed_positions)$/.test(fileKey) || fileKey.endsWith('.rotary_emb.inv_freq')) return undefined;
    if (fileKey === 'lm_head.weight') return this.config.tieWordEmbeddings ? undefined : fileKey;
    if (fileKey === 'lm_head.bias') return fileKey;
    return fileKey.startsWith('transformer.') ? fileKey : `transformer.${fileKey}`;
  }

  linearModules(): LinearModule[] {
    const d = this.config.hiddenSize;
    const mods: LinearModule[] = [];
    for (let i = 0; i < this.config.numLayers; i++) {
      const h = `transformer.h.${i}`;
      const add = (path: string, role: string, inF: number, outF: number): void => {
        mods.push({ path, role, weight: `${path}.weight`, layout: 'out_in', inFeatures: inF, outFeatures: outF });
      };
      add(`${h}.attn.q_proj`, 'q_proj', d, d);
      add(`${h}.attn.k_proj`, 'k_proj', d, d);
      add(`${h}.attn.v_proj`, 'v_proj', d, d);
      add(`${h}.attn.out_proj`, 'out_proj', d, d);
      add(`${h}.mlp.fc_in`, 'fc_in', d, this.inner);
      add(`${h}.mlp.fc_out`, 'fc_out', this.inner, d);
    }
    return mods;
  }

  /** transformers' GPT-J reads its sinusoid table only up to n_positions. */
  checkSequenceLength(n: number): void {
    if (n > this.config.maxPositions) {
      throw new DpoError(`gptj: sequence of ${n} tokens exceeds n_positions ${this.config.maxPositions}`);
    }
  }

  forward(p: ModelParams, inputs: ForwardInputs): ForwardOutputs {
    const g = inputs.inputIds.graph;
    const { numHeads: heads, headDim, numLayers } = this.config;
    const wte = p['transformer.wte.weight'];
    const positions = inputs.positionIds ?? defaultPositions(inputs.inputIds, inputs.past);
    const rope = rotaryTables(positions, this.invFreq, wte.dtype as 'float32' | 'float64', 'interleaved');
    const drop = modelDropout(inputs.dropout, this.config.raw, { embd: 'embd_pdrop', attn: 'attn_pdrop', resid: 'resid_pdrop' });
    let h = drop.embd(op.gather(wte, inputs.inputIds));
    const present: KeyValue[] = [];
    let mask: Tensor | undefined;
    const scale = 1 / Math.sqrt(headDim);
    for (let i = 0; i < numLayers; i++) {
      const w = (name: string): Tensor => p[`transformer.h.${i}.${name}`];
      const lin = (x: Tensor, name: string, bias: boolean): Tensor => projection(p, `transformer.h.${i}.${name}`, x, 'out_in', bias);
      h = decoderLayer(p, inputs, h, present, (h) => {
        const a = layerNorm(h, w('ln_1.weight'), w('ln_1.bias'), this.eps);
        // GPTJAttention
        const q = applyRotary(splitHeads(lin(a, 'attn.q_proj', false), heads, headDim), rope);
        const k = applyRotary(splitHeads(lin(a, 'attn.k_proj', false), heads, headDim), rope);
        const v = splitHeads(lin(a, 'attn.v_proj', false), heads, headDim);
        const kv = withPast({ key: k, value: v }, inputs.past?.[i]);
        mask ??= attentionMask(g, q, kv.key, inputs);
        const attnOut = drop.resid(lin(mergeHeads(scaledDotProductAttention(q, kv.key, kv.value, mask, scale, drop.probs)), 'attn.out_proj', false));
        // GPTJMLP, from the same normalised input
        const ff = drop.resid(lin(this.act(lin(a, 'mlp.fc_in', true)), 'mlp.fc_out', true));
        return { hidden: op.add(op.add(attnOut, ff), h), kv };
      });
    }
    const hidden = layerNorm(h, p['transformer.ln_f.weight'], p['transformer.ln_f.bias'], this.eps);
    return { hidden, present };
  }

  logits(p: ModelParams, hidden: Tensor): Tensor {
    const w = this.config.tieWordEmbeddings ? p['transformer.wte.weight'] : p['lm_head.weight'];
    return linearT(hidden, w, p['lm_head.bias']);
  }
}
