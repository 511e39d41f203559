/**
 * GPT-2, as transformers' modeling_gpt2.py (GPT2LMHeadModel): learned positions, pre-LayerNorm
 * blocks, Conv1D projections stored [in, out], gelu_new, lm_head tied to wte.
 */
import type { Tensor } from '../engine/graph.js';
import * as op from '../engine/ops.js';
import { geluErf, geluTanh, layerNorm, linearT, silu } from '../engine/nn.js';
import { projection, type ModelParams } from './linear.js';
import { decoderLayer } from './layer-checkpoint.js';
import { attentionMask, mergeHeads, scaledDotProductAttention, splitHeads, withPast } from './attention.js';
import { DpoError } from '../errors.js';
import { readCommonConfig, num } from './config.js';
import type { CausalLM, CausalLMConfig, ForwardInputs, ForwardOutputs, KeyValue, LinearModule, ParamInfo } from './types.js';
import { defaultPositions } from './positions.js';
import { modelDropout } from './dropout.js';

export class GPT2 implements CausalLM {
  readonly modelType = 'gpt2';
  readonly config: CausalLMConfig;
  private readonly inner: number;
  private readonly eps: number;
  private readonly activation: string;
  private readonly scaleAttn: boolean;

  constructor(raw: Readonly<Record<string, unknown>>) {
    this.config = readCommonConfig(raw, {
      vocabSize: 'vocab_size',
      hiddenSize: 'n_embd',
      numLayers: 'n_layer',
      numHeads: 'n_head',
      maxPositions: 'n_positions',
    });
    const d = this.config.hiddenSize;
    this.inner = raw.n_inner == null ? 4 * d : num(raw, 'n_inner');
    this.eps = raw.layer_norm_epsilon == null ? 1e-5 : num(raw, 'layer_norm_epsilon');
    this.activation = typeof raw.activation_function === 'string' ? raw.activation_function : 'gelu_new';
    this.scaleAttn = raw.scale_attn_weights !== false;
    if (raw.scale_attn_by_inverse_layer_idx === true || raw.reorder_and_upcast_attn === true) {
      throw new DpoError('gpt2: scale_attn_by_inverse_layer_idx and reorder_and_upcast_attn are not supported');
    }
  }

  parameters(): ParamInfo[] {
    const { vocabSize: v, hiddenSize: d, maxPositions: p, numLayers } = this.config;
    const ps: ParamInfo[] = [
      { name: 'transformer.wte.weight', shape: [v, d] },
      { name: 'transformer.wpe.weight', shape: [p, d] },
    ];
    for (let i = 0; i < numLayers; i++) {
      const h = `transformer.h.${i}`;
      ps.push(
        { name: `${h}.ln_1.weight`, shape: [d] },
        { name: `${h}.ln_1.bias`, shape: [d] },
        { name: `${h}.attn.c_attn.weight`, shape: [d, 3 * d] },
        { name: `${h}.attn.c_attn.bias`, shape: [3 * d] },
        { name: `${h}.attn.c_proj.weight`, shape: [d, d] },
        { name: `${h}.attn.c_proj.bias`, shape: [d] },
        { name: `${h}.ln_2.weight`, shape: [d] },
        { name: `${h}.ln_2.bias`, shape: [d] },
        { name: `${h}.mlp.c_fc.weight`, shape: [d, this.inner] },
        { name: `${h}.mlp.c_fc.bias`, shape: [this.inner] },
        { name: `${h}.mlp.c_proj.weight`, shape: [this.inner, d] },
        { name: `${h}.mlp.c_proj.bias`, shape: [d] },
      );
    }
    ps.push({ name: 'transformer.ln_f.weight', shape: [d] }, { name: 'transformer.ln_f.bias', shape: [d] });
    return ps;
  }

  canonicalKey(fileKey: string): string | undefined {
    if (/\.attn\.(bias|masked_bias)$/.test(fileKey)) return undefined;
    if (fileKey === 'lm_head.weight') return undefined; // tied to wte
    return fileKey.startsWith('transformer.') ? fileKey : `transformer.${fileKey}`;
  }

  linearModules(): LinearModule[] {
    const d = this.config.hiddenSize;
    const mods: LinearModule[] = [];
    for (let i = 0; i < this.config.numLayers; i++) {
      const h = `transformer.h.${i}`;
      const add = (path: string, role: string, inF: number, outF: number): void => {
        mods.push({ path, role, weight: `${path}.weight`, layout: 'in_out', inFeatures: inF, outFeatures: outF });
      };
      add(`${h}.attn.c_attn`, 'c_attn', d, 3 * d);
      add(`${h}.attn.c_proj`, 'attn.c_proj', d, d);
      add(`${h}.mlp.c_fc`, 'c_fc', d, this.inner);
      add(`${h}.mlp.c_proj`, 'mlp.c_proj', this.inner, d);
    }
    return mods;
  }

  /** Learned positions: wpe has n_positions rows. */
  checkSequenceLength(n: number): void {
    if (n > this.config.maxPositions) {
      throw new DpoError(`gpt2: sequence of ${n} tokens exceeds n_positions ${this.config.maxPositions} (learned position embeddings)`);
    }
  }

  private act(x: Tensor): Tensor {
    switch (this.activation) {
      case 'gelu_new':
      case 'gelu_pytorch_tanh':
        return geluTanh(x);
      case 'gelu':
        return geluErf(x);
      case 'relu':
        return op.relu(x);
      case 'silu':
      case 'swish':
        return silu(x);
      default:
        throw new DpoError(`gpt2: activation_function '${this.activation}' is not supported`);
    }
  }

  forward(p: ModelParams, inputs: ForwardInputs): ForwardOutputs {
    const g = inputs.inputIds.graph;
    const { numHeads: heads, headDim, numLayers } = this.config;
    const positions = inputs.positionIds ?? defaultPositions(inputs.inputIds, inputs.past);
    const drop = modelDropout(inputs.dropout, this.config.raw, { embd: 'embd_pdrop', attn: 'attn_pdrop', resid: 'resid_pdrop' });
    let h = drop.embd(op.add(op.gather(p['transformer.wte.weight'], inputs.inputIds), op.gather(p['transformer.wpe.weight'], positions)));
    const present: KeyValue[] = [];
    let mask: Tensor | undefined;
    const scale = this.scaleAttn ? 1 / Math.sqrt(headDim) : 1;
    for (let i = 0; i < numLayers; i++) {
      const w = (name: string): Tensor => p[`transformer.h.${i}.${name}`];
      // Conv1D: weights stored [in, out], always with a bias.
      const conv1d = (x: Tensor, name: string): Tensor => projection(p, `transformer.h.${i}.${name}`, x, 'in_out', true);
      h = decoderLayer(p, inputs, h, present, (h) => {
        const a = layerNorm(h, w('ln_1.weight'), w('ln_1.bias'), this.eps);
        const d = this.config.hiddenSize;
        const [q, k, v] = op.split(conv1d(a, 'attn.c_attn'), -1, [d, d, d]);
        const kv = withPast({ key: splitHeads(k, heads, headDim), value: splitHeads(v, heads, headDim) }, inputs.past?.[i]);
        const qh = splitHeads(q, heads, headDim);
        mask ??= attentionMask(g, qh, kv.key, inputs);
        const attn = mergeHeads(scaledDotProductAttention(qh, kv.key, kv.value, mask, scale, drop.probs));
        h = op.add(h, drop.resid(conv1d(attn, 'attn.c_proj')));
        const m = layerNorm(h, w('ln_2.weight'), w('ln_2.bias'), this.eps);
        const ff = this.act(conv1d(m, 'mlp.c_fc'));
        return { hidden: op.add(h, drop.resid(conv1d(ff, 'mlp.c_proj'))), kv };
      });
    }
    const hidden = layerNorm(h, p['transformer.ln_f.weight'], p['transformer.ln_f.bias'], this.eps);
    return { hidden, present };
  }

  logits(p: ModelParams, hidden: Tensor): Tensor {
    return linearT(hidden, p['transformer.wte.weight']);
  }
}
