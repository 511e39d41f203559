/**
 * One DPO training step (forward, loss, backward and optimizer update in one graph) on the WebGPU
 * provider equals the CPU provider's: loss, gradients (an SGD step at learning rate 1 moves each
 * weight by minus its gradient) and the weights after an AdamW step, for four model families.
 * And no op of the step falls back to the CPU (ORT's profile names the provider of every node).
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import type { Graph, Tensor } from '../../src/engine/graph.js';
import * as op from '../../src/engine/ops.js';
import type { OptimizerConfig } from '../../src/engine/optim.js';
import type { RuntimeOptions } from '../../src/engine/runtime.js';
import { TrainStep, type ParamSpec } from '../../src/engine/train-step.js';
import type { CausalLM } from '../../src/models/types.js';
import { preferenceLoss } from '../../src/train/dpo/losses.js';
import { declareScoredInputs, sequenceLogps } from '../../src/scoring/sequence-logps.js';
import { describeWebgpu, fallbacks, floatCopies, loadFixture, maxAbsDiff, placedNodes, type Feeds } from './helpers.js';

const BETA = 0.1;
const TOL = 1e-4;
/** SwiftShader compiles and runs four sessions here: seconds on a quiet machine, minutes on a loaded one. */
const SLOW = 600_000;
const profiles = mkdtempSync(join(tmpdir(), 'dpo-ts-webgpu-'));
afterAll(() => void (process.env.KEEP_PROFILES || rmSync(profiles, { recursive: true, force: true })));

/** 2 pairs (4 sequences of 7 tokens, one padded), completions of 3 and 2 tokens. */
function batch(vocab: number): Feeds {
  const S = 4;
  const T = 7;
  const ids = new BigInt64Array(S * T);
  const mask = new Float32Array(S * T);
  for (let s = 0; s < S; s++) {
    const len = s === 3 ? 5 : T;
    for (let t = 0; t < len; t++) {
      ids[s * T + t] = BigInt((s * 31 + t * 17 + 5) % vocab);
      mask[s * T + t] = 1;
    }
  }
  // Scored positions: the logits at position p predict token p + 1.
  const scored: [number, number][] = [];
  for (let s = 0; s < S; s++) {
    const end = s === 3 ? 5 : T;
    const n = s % 2 === 0 ? 3 : 2;
    for (let p = end - 1 - n; p < end - 1; p++) scored.push([s, p]);
  }
  const m = scored.length;
  return {
    input_ids: { data: ids, dims: [S, T] },
    attention_mask: { data: mask, dims: [S, T] },
    score_positions: { data: BigInt64Array.from(scored, ([s, p]) => BigInt(s * T + p)), dims: [m] },
    score_targets: { data: BigInt64Array.from(scored, ([s, p]) => ids[s * T + p + 1]), dims: [m] },
    score_segments: { data: BigInt64Array.from(scored, ([s]) => BigInt(s)), dims: [m] },
    ref_logps: { data: Float32Array.of(-9.5, -8.25, -7.75, -6.5), dims: [S] },
    completion_lengths: { data: Float32Array.of(3, 2, 3, 2), dims: [S] },
  };
}

function dpoLoss(model: CausalLM) {
  return (g: Graph, params: Record<string, Tensor>) => {
    const scores = sequenceLogps(model, params, declareScoredInputs(g));
    const ref = g.input('ref_logps', 'float32', ['sequences']);
    const lengths = g.input('completion_lengths', 'float32', ['sequences']);
    // Sequences alternate chosen, rejected: [K = 2, B] as the losses expect.
    const byRow = (t: Tensor): Tensor => op.transpose(op.reshape(t, [-1, 2]), [1, 0]);
    const loss = preferenceLoss({ policy: byRow(scores.logps), reference: byRow(ref), lengths: byRow(lengths) }, { beta: BETA, lossTypes: ['sigmoid'] });
    return { loss, outputs: { policy_logps: scores.logps } };
  };
}

interface StepOutcome {
  loss: number;
  gradNorm: number;
  logps: Float32Array;
  weights: Map<string, Float32Array>;
}

async function oneStep(family: string, optimizer: OptimizerConfig, lr: number, runtime: RuntimeOptions): Promise<StepOutcome> {
  const { model, weights } = await loadFixture(family);
  const specs: ParamSpec[] = model.parameters().map((p) => ({ name: p.name, shape: p.shape, data: Float32Array.from(weights.get(p.name) as Float32Array) }));
  const step = await TrainStep.create(specs, dpoLoss(model), optimizer, runtime);
  try {
    const r = await step.step(batch(model.config.vocabSize), lr);
    await step.sync();
    return { loss: r.loss, gradNorm: r.gradNorm, logps: Float32Array.from(r.outputs.policy_logps.data as Float32Array), weights: new Map([...step.parameters()].map(([n, w]) => [n, Float32Array.from(w)])) };
  } finally {
    await step.release();
  }
}

function worstWeight(a: Map<string, Float32Array>, b: Map<string, Float32Array>): { name: string; diff: number } {
  let worst = { name: '', diff: 0 };
  for (const [name, w] of a) {
    const d = maxAbsDiff(w, b.get(name) as Float32Array);
    if (d > worst.diff) worst = { name, diff: d };
  }
  return worst;
}

describeWebgpu('a DPO step on WebGPU equals the CPU step', () => {
  for (const family of ['gpt2', 'llama', 'qwen3', 'gemma2']) {
    it(family, async () => {
      // SGD at learning rate 1 without clipping: each weight moves by minus its gradient.
      const sgd: OptimizerConfig = { name: 'sgd', maxGradNorm: 0 };
      const dir = join(profiles, family);
      mkdirSync(dir);
      const cpu = await oneStep(family, sgd, 1, { threads: 1 });
      const gpu = await oneStep(family, sgd, 1, { threads: 1, executionProvider: 'webgpu', profilePrefix: join(dir, 'step') });
      const before = (await loadFixture(family)).weights;
      const moved = worstWeight(cpu.weights, before);
      const grads = worstWeight(gpu.weights, cpu.weights);
      console.log(
        `${family}: loss ${cpu.loss} cpu / ${gpu.loss} webgpu; grad norm ${cpu.gradNorm} / ${gpu.gradNorm}; ` +
          `largest gradient ${moved.diff.toExponential(2)}, largest gradient difference ${grads.diff.toExponential(2)} (${grads.name})`,
      );
      expect(moved.diff).toBeGreaterThan(1e-2);
      expect(Math.abs(gpu.loss - cpu.loss)).toBeLessThan(TOL);
      expect(Math.abs(gpu.gradNorm - cpu.gradNorm)).toBeLessThan(TOL);
      // Sums of a few token log-probs (about -5 each): relative. RoPE's Sin/Cos on SwiftShader
      // put these about 3e-5 apart (relative) for the llama-like families, 1e-7 for gpt2.
      cpu.logps.forEach((v, i) => expect(Math.abs(gpu.logps[i] - v)).toBeLessThan(TOL * Math.max(1, Math.abs(v))));
      expect(grads.diff).toBeLessThan(TOL);

      const nodes = placedNodes(dir);
      const off = fallbacks(nodes);
      console.log(`${family}: ${nodes.length} nodes, ${nodes.filter((n) => n.provider === 'WebGpuExecutionProvider').length} on WebGPU; fallbacks: ${off.map((n) => `${n.op} ${n.node}`).join(', ') || 'none'}`);
      expect(nodes.length).toBeGreaterThan(100);
      expect(off.map((n) => `${n.op} (${n.node}) on ${n.provider}`)).toEqual([]);
      expect(floatCopies(nodes).map((n) => `${n.op} (${n.node}) ${JSON.stringify(n.outputs)}`)).toEqual([]);

      if (family !== 'gpt2') return;
      // (One family: a second pair of sessions per family costs CI half a minute each on SwiftShader.)
      // AdamW: its first step is about lr x sign(gradient), so a gradient that is zero up to
      // rounding (a key bias: softmax ignores a constant shift) may move either way on either
      // provider. Weights with a real gradient (above 1e-5) must agree.
      const adamw: OptimizerConfig = { name: 'adamw', weightDecay: 0.01, maxGradNorm: 1 };
      const cpuA = await oneStep(family, adamw, 1e-3, { threads: 1 });
      const gpuA = await oneStep(family, adamw, 1e-3, { threads: 1, executionProvider: 'webgpu' });
      let worst = 0;
      let noise = 0;
      for (const [name, w] of cpuA.weights) {
        const g0 = before.get(name) as Float32Array;
        const g1 = cpu.weights.get(name) as Float32Array;
        const wg = gpuA.weights.get(name) as Float32Array;
        for (let i = 0; i < w.length; i++) {
          if (Math.abs(g0[i] - g1[i]) < 1e-5) noise++;
          else worst = Math.max(worst, Math.abs(w[i] - wg[i]));
        }
      }
      console.log(`${family}: AdamW step: weights within ${worst.toExponential(2)} (${noise} weights with a gradient below 1e-5 not compared)`);
      expect(worst).toBeLessThan(TOL);
    }, SLOW);
  }
});

describeWebgpu('WebGPU training steps that keep state on the GPU', () => {
  it('gradient accumulation and several steps per run equal the CPU (then a restore uploads again)', async () => {
    const { model, weights } = await loadFixture('gpt2');
    const vocab = model.config.vocabSize;
    const b = batch(vocab);
    // A second micro-batch: the same sequences shifted by one token id.
    const b2: Feeds = { ...b, input_ids: { data: (b.input_ids.data as BigInt64Array).map((v) => BigInt((Number(v) + 1) % vocab)), dims: b.input_ids.dims } };
    b2.score_targets = { data: (b.score_targets.data as BigInt64Array).map((v) => BigInt((Number(v) + 1) % vocab)), dims: b.score_targets.dims };
    const run = async (runtime: RuntimeOptions): Promise<{ losses: number[]; weights: Map<string, Float32Array>; state: number }> => {
      const specs: ParamSpec[] = model.parameters().map((p) => ({ name: p.name, shape: p.shape, data: Float32Array.from(weights.get(p.name) as Float32Array) }));
      const step = await TrainStep.create(specs, dpoLoss(model), { name: 'adamw', weightDecay: 0.01, maxGradNorm: 1 }, runtime);
      try {
        const losses = [(await step.step([b, b2], 1e-2)).loss, ...(await step.steps([b2, b], [1e-2, 5e-3])).map((r) => r.loss)];
        await step.sync();
        const after = new Map([...step.parameters()].map(([n, w]) => [n, Float32Array.from(w)]));
        const m = Object.values(step.optimizerState().state.get('transformer.wte.weight') ?? {})[0];
        const state = m.reduce((t, v) => t + Math.abs(v), 0);
        // Back to the start: the next step must see the restored values, not the GPU's.
        step.restore(new Map(specs.map((sp) => [sp.name, weights.get(sp.name) as Float32Array])), new Map(), 0);
        losses.push((await step.step(b, 1e-2)).loss);
        return { losses, weights: after, state };
      } finally {
        await step.release();
      }
    };
    const cpu = await run({ threads: 1 });
    const gpu = await run({ threads: 1, executionProvider: 'webgpu' });
    console.log(`accumulation + 2 steps per run: losses ${cpu.losses.map((l) => l.toFixed(6)).join(' ')} cpu / ${gpu.losses.map((l) => l.toFixed(6)).join(' ')} webgpu`);
    // The last loss is after the restore: a GPU still holding the trained values would differ.
    cpu.losses.forEach((l, i) => expect(Math.abs(gpu.losses[i] - l)).toBeLessThan(TOL));
    expect(Math.abs(cpu.losses[3] - cpu.losses[2])).toBeGreaterThan(1e-3);
    expect(Math.abs(gpu.state - cpu.state) / cpu.state).toBeLessThan(1e-3);
    // AdamW: weights with near-zero gradients may step either way (see above); most must agree.
    let agree = 0;
    let total = 0;
    for (const [name, w] of cpu.weights) {
      const g = gpu.weights.get(name) as Float32Array;
      for (let i = 0; i < w.length; i++, total++) if (Math.abs(w[i] - g[i]) < TOL) agree++;
    }
    expect(agree / total).toBeGreaterThan(0.95);
  }, SLOW);
});
