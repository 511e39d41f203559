/**
 * The training graph's elementwise work stays small (issue 14, item 3). Values and gradients are
 * checked elsewhere (fixtures, gradchecks, optimizer references); these tests pin the structure
 * that makes the step cheaper, so a change that silently brings a pass back fails here:
 *  - the attention mask is an additive bias built once per forward: no Where over the scores;
 *  - the lm_head backward recomputes the chunk logits but not their log-sum-exp, and sums the
 *    chunks' weight gradients inside Gemm;
 *  - ONNX Runtime fuses GELU's forward into one FastGelu kernel per layer;
 *  - AdamW reads and writes every parameter in 12 elementwise passes (clipping included).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import onnxProto from 'onnx-proto';
import { describe, expect, it } from 'vitest';
import { grad } from '../../../src/engine/autodiff.js';
import { Graph, type Node, type Tensor } from '../../../src/engine/graph.js';
import * as op from '../../../src/engine/ops.js';
import { buildOptimizer } from '../../../src/engine/optim.js';
import { CompiledGraph } from '../../../src/engine/runtime.js';
import { createModel } from '../../../src/models/registry.js';
import { LM_HEAD_CHUNKS, declareScoredInputs, sequenceLogps } from '../../../src/scoring/sequence-logps.js';

const LAYERS = 2;
const model = createModel({ model_type: 'gpt2', vocab_size: 11, n_embd: 8, n_layer: LAYERS, n_head: 2, n_positions: 16, activation_function: 'gelu_new', layer_norm_epsilon: 1e-5 });

/** Nodes the `roots` depend on (what the exported graph keeps). */
function reached(roots: readonly Tensor[]): Node[] {
  const seen = new Map<number, Node>();
  const stack = [...roots];
  for (let t = stack.pop(); t; t = stack.pop()) {
    if (!t.node || seen.has(t.node.id)) continue;
    seen.set(t.node.id, t.node);
    stack.push(...t.node.inputs);
  }
  return [...seen.values()];
}

/** A policy's DPO-like training graph: per-sequence log-probs, weighted, and their gradients. */
function trainingGraph(packed = false): { g: Graph; logps: Tensor; grads: Tensor[] } {
  const g = new Graph();
  const params: Record<string, Tensor> = {};
  for (const p of model.parameters()) params[p.name] = g.input(p.name, 'float32', p.shape);
  const { logps } = sequenceLogps(model, params, declareScoredInputs(g, 'float32', { packed }));
  const weights = g.input('weights', 'float32', ['sequences']);
  const grads = grad(op.sum(op.mul(logps, weights)), Object.values(params));
  return { g, logps, grads };
}

describe('elementwise passes of a training step', () => {
  for (const packed of [false, true]) {
    it(`attention: the mask is added to the scores, never selected with Where (${packed ? 'packed segment ids' : 'float padding mask'})`, () => {
      const { logps, grads } = trainingGraph(packed);
      const nodes = reached([logps, ...grads]);
      // Scores are [B, H, T, S]: any Where or mask Add with a heads axis > 1 is per-layer mask work.
      const perHead = (n: Node): boolean => n.outputs[0].rank === 4 && n.outputs[0].shape[1] === 2;
      expect(nodes.filter((n) => n.op === 'Where' && perHead(n)).length).toBe(0);
      // Forward + recomputation in the backward, per layer: one Add of the [B, 1, T, S] bias each.
      const maskAdds = nodes.filter((n) => n.op === 'Add' && perHead(n) && n.inputs.some((x) => x.rank === 4 && x.shape[1] === 1));
      expect(maskAdds.length).toBe(2 * LAYERS);
      // The bias itself is built once (a Where over [B or 1, 1, T, S]).
      expect(nodes.filter((n) => n.op === 'Where' && n.outputs[0].rank === 4).length).toBe(1);
    });
  }

  it('lm_head: the backward recomputes each chunk’s logits but not its log-sum-exp', () => {
    const { logps, grads } = trainingGraph();
    const forward = new Set(reached([logps]).map((n) => n.id));
    const backward = reached(grads).filter((n) => !forward.has(n.id));
    expect([...forward].length).toBeGreaterThan(0);
    expect(reached([logps]).filter((n) => n.op === 'ReduceLogSumExp')).toHaveLength(LM_HEAD_CHUNKS);
    expect(backward.filter((n) => n.op === 'ReduceLogSumExp')).toHaveLength(0);
    // The logits are recomputed: one vocabulary matmul per chunk in the backward alone.
    const logitsShaped = (t: Tensor): boolean => t.rank === 2 && typeof t.shape[0] !== 'number' && t.shape[1] === 11;
    const vocabMatmuls = backward.filter((n) => n.op === 'MatMul' && logitsShaped(n.outputs[0]));
    expect(vocabMatmuls).toHaveLength(LM_HEAD_CHUNKS);
    // The chunks' [vocab, hidden] weight gradients accumulate inside Gemm (no product tensor
    // beside the running sum, no Add pass), in the product's [hidden, vocab] layout.
    const vocabSized = (t: Tensor): boolean => t.shape.join(',') === '11,8' || t.shape.join(',') === '8,11';
    expect(backward.filter((n) => n.op === 'Gemm' && vocabSized(n.outputs[0]))).toHaveLength(LM_HEAD_CHUNKS - 1);
    // The sum is transposed to the embedding's layout once (Transposes of the weight itself are
    // views ORT folds into the matmuls).
    const computed = (n: Node): boolean => n.inputs.some((x) => x.node?.op === 'MatMul' || x.node?.op === 'Gemm');
    expect(backward.filter((n) => vocabSized(n.outputs[0]) && n.op === 'Add')).toHaveLength(0);
    expect(backward.filter((n) => vocabSized(n.outputs[0]) && n.op === 'Transpose' && computed(n))).toHaveLength(1);
  });

  it('ONNX Runtime fuses each layer’s GELU forward into one FastGelu kernel (float32, CPU)', async () => {
    const { logps, grads } = trainingGraph();
    const dir = mkdtempSync(join(tmpdir(), 'dpo-ts-fusion-'));
    try {
      const path = join(dir, 'optimized.onnx');
      const compiled = await CompiledGraph.compile({ logps, ...Object.fromEntries(grads.map((t, i) => [`g${i}`, t])) }, { threads: 1, optimizedModelPath: path });
      await compiled.release();
      const nodes = onnxProto.onnx.ModelProto.decode(readFileSync(path)).graph?.node ?? [];
      expect(nodes.filter((n) => n.opType === 'FastGelu').length).toBe(LAYERS);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it.each([
    ['AdamW + clipping', 12, { name: 'adamw', maxGradNorm: 1 } as const],
    ['AdamW + clipping + weight decay', 13, { name: 'adamw', maxGradNorm: 1, weightDecay: 0.1 } as const],
    ['AdamW', 12, { name: 'adamw' } as const],
  ])('%s: %d parameter-sized elementwise passes, no separate clipping pass', (_name, passes, config) => {
    const g = new Graph();
    const p = g.input('w', 'float32', [7, 13]);
    const x = g.input('x', 'float32', [7, 13]);
    const [gw] = grad(op.sum(op.mul(op.mul(p, p), x)), [p]);
    const before = new Set(reached([gw]).map((n) => n.id));
    const opt = buildOptimizer(g, [p], [gw], config);
    const update = reached([opt.newParams[0], opt.newState[0].exp_avg, opt.newState[0].exp_avg_sq, opt.gradNorm]).filter((n) => !before.has(n.id));
    const sized = update.filter((n) => n.outputs[0].shape.join(',') === '7,13');
    expect(sized.map((n) => n.op).sort()).toHaveLength(passes);
    // The global norm reads each gradient once, without a squared copy.
    expect(update.filter((n) => n.op === 'ReduceSumSquare')).toHaveLength(1);
  });
});
