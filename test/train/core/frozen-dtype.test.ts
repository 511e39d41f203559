/**
 * Frozen weights held as float16 (engine/frozen.ts, `frozenDtype: 'float16'`): a LoRA DPO step
 * on float16 base weights equals, bit for bit, the float32 step whose base weights were rounded
 * to float16 first (the in-graph Cast is exact and every product still runs in float32), with
 * and without gradient checkpointing; the backward casts again instead of keeping the forward's
 * float32 copies; embeddings gather float16 rows; the host rounding is round-to-nearest-even.
 */
import { describe, expect, it } from 'vitest';
import { collatePreferences } from '../../../src/data/collate.js';
import { grad } from '../../../src/engine/autodiff.js';
import { frozenInput } from '../../../src/engine/frozen.js';
import { Graph, type Tensor } from '../../../src/engine/graph.js';
import * as op from '../../../src/engine/ops.js';
import { CompiledGraph, type HostTensor } from '../../../src/engine/runtime.js';
import { TrainStep } from '../../../src/engine/train-step.js';
import { floatToHalfBits, floatsToHalfBits, f16BitsToF32 } from '../../../src/io/dtypes.js';
import { withGradientCheckpointing, type ModelParams } from '../../../src/models/linear.js';
import { createModel } from '../../../src/models/registry.js';
import { scoredFeeds } from '../../../src/scoring/sequence-logps.js';
import { buildPolicy, frozenWeights } from '../../../src/train/core/policy.js';
import { buildDpoLoss } from '../../../src/train/dpo/trainer.js';
import { Rng } from '../../../src/data/rng.js';
import { parseDpoConfig } from '../../../src/train/dpo/config.js';
import { reachableNodes } from '../../../src/engine/onnx-export.js';

const model = createModel({ model_type: 'llama', vocab_size: 37, hidden_size: 16, intermediate_size: 24, num_hidden_layers: 2, num_attention_heads: 2, num_key_value_heads: 1, max_position_embeddings: 64, tie_word_embeddings: true });

function randomWeights(seed: number): Map<string, Float32Array> {
  const rng = new Rng(seed);
  return new Map(
    model.parameters().map((p) => {
      const n = p.shape.reduce((a, b) => a * b, 1);
      const norm = p.shape.length === 1;
      return [p.name, Float32Array.from({ length: n }, () => (norm ? 1 + (rng.nextFloat() - 0.5) * 0.2 : (rng.nextFloat() - 0.5) * 0.3))];
    }),
  );
}

const rows = Array.from({ length: 3 }, (_, i) => ({
  promptIds: [1 + i, 5, 9, 2 + i],
  completionIds: [[3, 4 + i, 7], [8, 11 - i]],
  origin: { file: 'test', line: i + 1 },
}));
const batch = collatePreferences(rows, { padTokenId: 0 });
const n = batch.numSequences;
const feeds: Record<string, HostTensor> = {
  ...scoredFeeds(batch),
  completion_lengths: { data: Float32Array.from(batch.completionLengths), dims: [n] },
  ref_logps: { data: Float32Array.from({ length: n }, (_, i) => -6 - 0.3 * i), dims: [n] },
};
const LORA = { r: 4, alpha: 8, dropout: 0, targetModules: 'all-linear' as const };

/** Two AdamW steps of a LoRA DPO step; the losses and the adapters after them. */
async function twoSteps(weights: Map<string, Float32Array>, frozenDtype: 'float32' | 'float16', checkpointing: boolean) {
  const policy = buildPolicy(model, weights, LORA, 5, frozenDtype);
  const transform = policy.trainTransform as (g: Graph, p: Record<string, Tensor>) => ModelParams;
  const step = await TrainStep.create(
    policy.specs,
    (g, p) => buildDpoLoss(g, model, withGradientCheckpointing(transform(g, p), checkpointing), { beta: 0.5, labelSmoothing: 0, lossTypes: ['sigmoid'] }, 2, false),
    { name: 'adamw', weightDecay: 0, maxGradNorm: 1 },
    { threads: 1 },
  );
  try {
    const losses: number[] = [];
    for (let i = 0; i < 2; i++) losses.push((await step.steps([feeds], [0.05]))[0].loss);
    const params = step.parameters();
    return { losses, adapters: policy.trainable.map((name) => Float32Array.from(params.get(name) as Float32Array)), frozen: policy.specs.filter((s) => s.trainable === false) };
  } finally {
    await step.release();
  }
}

function roundedToHalf(weights: ReadonlyMap<string, Float32Array>): Map<string, Float32Array> {
  return new Map(
    [...weights].map(([k, v]) => {
      const back = new Float32Array(v.length);
      f16BitsToF32(floatsToHalfBits(v), back);
      return [k, back];
    }),
  );
}

describe('frozen weights as float16', () => {
  for (const checkpointing of [false, true]) {
    it(`a LoRA DPO step equals the float32 step on weights rounded to float16, bit for bit${checkpointing ? ' (gradient checkpointing)' : ''}`, async () => {
      const w = randomWeights(3);
      const half = await twoSteps(w, 'float16', checkpointing);
      // The float32 step on the same weights rounded to float16 (the embedding stays float32 in both).
      const rounded = await twoSteps(new Map([...roundedToHalf(w), ['model.embed_tokens.weight', w.get('model.embed_tokens.weight') as Float32Array]]), 'float32', checkpointing);
      const unrounded = await twoSteps(w, 'float32', checkpointing);
      // Every frozen weight but the vocabulary-sized embedding (tied head) is held as float16.
      expect(half.frozen.filter((s) => !(s.data instanceof Uint16Array)).map((s) => s.name)).toEqual(['model.embed_tokens.weight']);
      expect(half.losses).toEqual(rounded.losses);
      half.adapters.forEach((a, i) => expect(a).toEqual(rounded.adapters[i]));
      // ...and the rounding is real: the unrounded float32 step differs.
      expect(Math.abs(half.losses[1] - unrounded.losses[1])).toBeGreaterThan(0);
      expect(Math.abs(half.losses[1] - unrounded.losses[1])).toBeLessThan(1e-3);
    });
  }

  it('the backward casts the frozen weight again (after the incoming gradient) instead of keeping the forward copy', () => {
    const g = new Graph();
    const w = frozenInput(g, 'w', [6, 4], 'float16');
    const x = g.input('x', 'float32', [3, 4]);
    const a = g.input('a', 'float32', [4, 4]);
    const h = op.matmul(op.matmul(x, a), op.transpose(w, [1, 0]));
    const [da] = grad(op.sum(op.mul(h, h)), [a], undefined, { recastFrozen: true });
    const casts = reachableNodes([da]).filter((n) => n.op === 'Cast' && n.inputs[0].dtype === 'float16');
    expect(casts.length).toBe(2);
    // Both read the float16 input through an ordering Reshape: the forward's after the product's
    // other operand, the backward's after the incoming gradient (neither at the start of the run).
    expect(casts.filter((c) => c.inputs[0].kind === 'input').length).toBe(0);
  });

  it('an embedding lookup gathers float16 rows and casts only them; ONNX Runtime runs it', async () => {
    const g = new Graph();
    const table = frozenInput(g, 'table', [5, 3], 'float16');
    const ids = g.input('ids', 'int64', [2]);
    const rowsOut = op.gather(table, ids);
    expect(rowsOut.node?.op).toBe('Cast');
    expect(rowsOut.node?.inputs[0].node?.op).toBe('Gather');
    const values = Float32Array.from({ length: 15 }, (_, i) => (i - 7) / 3);
    const compiled = await CompiledGraph.compile({ rows: rowsOut }, { threads: 1 });
    try {
      const out = await compiled.run({ table: { data: floatsToHalfBits(values), dims: [5, 3] }, ids: { data: BigInt64Array.of(4n, 1n), dims: [2] } });
      const expected = roundedToHalf(new Map([['t', values]])).get('t') as Float32Array;
      expect(Array.from(out.rows.data as Float32Array)).toEqual([...expected.subarray(12, 15), ...expected.subarray(3, 6)]);
    } finally {
      await compiled.release();
    }
  });

  it('the host rounding is round-to-nearest-even, and values beyond float16 are refused by name', () => {
    // 1 + 2^-11 is halfway between two halves: to the even one (1); 1 + 3·2^-11 rounds up.
    const v = Float32Array.of(1 + 2 ** -11, 1 + 3 * 2 ** -11, 65504, 65519, -3e-8, 0.1);
    expect(Array.from(floatsToHalfBits(v))).toEqual(Array.from(v, floatToHalfBits));
    expect(floatsToHalfBits(v)[0]).toBe(0x3c00);
    expect(floatsToHalfBits(v)[1]).toBe(0x3c02);
    expect(() => frozenWeights(new Map([['big.weight', Float32Array.of(1, 70000)]]), 'float16')).toThrow(/big\.weight holds 70000, beyond float16's range/);
  });

  it('the config refuses frozenDtype where nothing frozen is held during training', () => {
    const base = { model: 'm', data: 'd.jsonl', output: 'o', frozenDtype: 'float16' };
    expect(() => parseDpoConfig(base)).toThrow(/frozenDtype applies to frozen weights held during training/);
    expect(parseDpoConfig({ ...base, lora: { r: 4 } }).frozenDtype).toBe('float16');
    expect(parseDpoConfig({ ...base, reference: 'live' }).frozenDtype).toBe('float16');
  });
});
