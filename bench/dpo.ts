/**
 * A full DPO training step, timed: policy forward + backward over chosen and rejected together
 * (one forward over 2B sequences), reference log-probs fed as inputs (precomputed), sigmoid DPO
 * loss, gradient clipping and AdamW, on random weights and random token ids.
 *
 *   npm run bench -- dpo [--models gpt2-124m,smollm2-135m,quickstart,qwen3-0.6b] [--variants full,lora] [--steps 3]
 *                        [--warmup 3] [--threads 2] [--gradient-checkpointing] [--vs-torch] [--rounds 3]
 *                        [--torch-warmup N] [--profile DIR] [--steps-per-run 1,2,4] [--device cpu|webgpu|cuda [--peak-tflops T]]
 *                        [--reference precompute|live] [--frozen-dtype float32|float16] [--prefix-sharing auto|on|off]
 *                        [--child MODEL [--variant full|lora] [--mem-trace] [--steps-per-run K]]  (one model in this process;
 *                                    per-step memory on stderr, also after a GC when node runs with --expose-gc)
 *
 * A model name "<model>@L<n>" (e.g. qwen3-0.6b@L4) keeps the model's shapes with n layers: peak
 * memory is close to linear in the layer count, so two of these extrapolate a step too big for
 * the machine.
 *
 * Variants: `full` fine-tunes every weight; `lora` trains LoRA adapters (r 16, alpha 32, every
 * linear layer, dropout 0) on the frozen weights, as `dpo train --lora-r 16 --lora-alpha 32
 * --lora-target-modules all-linear`. Without --vs-torch each model runs once per variant, and a
 * "dpo_lora_vs_full" line per model gives the tokens/s and peak-RSS ratios. --vs-torch compares
 * the full step only (bench/torch/dpo_step.py has no LoRA).
 *
 * Each model runs in its own child process (so peak RSS does not mix) and prints one JSON line:
 * bench "dpo_step", model, params, tokens_per_second (2·B·T / median step time: policy tokens
 * through forward + backward), ms_per_step, peak_rss_mb (maxRSS after the steps, before the
 * gemm reference), mfu (achieved FLOP/s over the gemm GFLOP/s of bench/engine.ts's 512x768x3072
 * gemm, measured in the same child right after the steps) and the pieces of that ratio.
 *
 * --vs-torch also runs bench/torch/dpo_step.py (same configs, passed as JSON) alternately with
 * dpo-ts, `--rounds` times each in fresh processes, and prints one "dpo_vs_torch" line per
 * model with the medians and their ratio. --profile DIR writes ORT's per-node profiles of the
 * two step graphs and prints a summary of the last timed step (time by op type, top nodes).
 *
 * --steps-per-run K1,K2,... runs each model (and variant) once per K with K optimizer steps per
 * session.run (TrainStep.steps; ms_per_step is a run's time / K, compile_ms includes the K-step
 * graph) and prints a "dpo_steps_per_run" line comparing them (ratios to the first K).
 *
 * --reference live also scores the batch with the reference (the frozen weights: LoRA's base with
 * adapters off, or a copy of the full model's) before every step and counts that forward in the
 * step's time, as `dpo train --reference live` does; the default (precompute) feeds reference
 * log-probs, as `dpo train` does by default (one pass over the data before training).
 *
 * --frozen-dtype float16 holds the frozen weights (the lora variant's base; a live reference) as
 * float16 graph inputs cast to float32 in the graph (dpo train --frozen-dtype).
 *
 * --device webgpu|cuda runs the step on that execution provider (parameters and AdamW state stay
 * on the GPU between steps with webgpu). MFU is then against the GPU's dense FP32 peak (by its
 * nvidia-smi name, or --peak-tflops), and peak_device_mb is the most GPU memory nvidia-smi saw
 * in use during the steps (the whole GPU's, so run nothing else on it). bench/gpu/run.sh runs the
 * GPU set on a machine without network access.
 *
 * --prefix-sharing (default auto, as `dpo train`): each pair's prompt computed once for both
 * completions (data/pack.ts), when that makes the batch's rows shorter (auto) or always (on).
 * The line's prefix_sharing says whether the batch was shared and rows_x_len the rows the forward
 * ran; tokens_per_second still counts the unshared 2·B·T tokens (the data the step consumed), and
 * the FLOPs (hence mfu) count the rows the forward ran.
 *
 * FLOPs per step (see BENCHMARKS.md): 6·P_body·N·T + 6·V·d·M + 12·L·d_attn·T²·N, where
 * P_body = parameters without the token/position embeddings (the tied lm_head is counted by the
 * second term), N = 2B sequences, T tokens each, M = scored (completion) positions, V vocab,
 * d hidden, L layers, d_attn = heads·head_dim.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { collatePreferences } from '../src/data/collate.js';
import type { TokenizedPreference } from '../src/data/tokenize.js';
import type { HostTensor, RuntimeOptions } from '../src/engine/runtime.js';
import { TrainStep } from '../src/engine/train-step.js';
import { createModel } from '../src/models/registry.js';
import type { CausalLM } from '../src/models/types.js';
import type { CombinedLossOptions } from '../src/train/dpo/losses.js';
import { buildDpoLoss } from '../src/train/dpo/trainer.js';
import { buildPolicy, frozenWeights } from '../src/train/core/policy.js';
import type { FrozenStorage } from '../src/engine/frozen.js';
import type { ParamData } from '../src/engine/train-step.js';
import type { Graph, Tensor } from '../src/engine/graph.js';
import { withGradientCheckpointing } from '../src/models/linear.js';
import { loraConfig, loraParameters } from '../src/models/lora.js';
import { scoredFeeds, scoredPacking, type ScoredLayout } from '../src/scoring/sequence-logps.js';
import type { PrefixSharing } from '../src/data/pack.js';
import { Scorer } from '../src/scoring/scorer.js';
import { prepareGemm } from './engine.js';
import { DEVICE_REQUESTS, resolveDevice, type Device, type DeviceRequest } from '../src/engine/device.js';
import { fp32PeakTflops, gpuName, sampleGpuMemory } from './gpu/device-stats.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, '..');

export interface BatchShape {
  pairs: number;
  /** Prompt + completion tokens of every sequence. */
  seqLen: number;
  promptLen: number;
}
/**
 * The benchmark's batch shapes: `standard`, 4 pairs of 256 tokens with prompt 64 (192 completion
 * tokens each); `long-prompt`, 4 pairs with prompt 384 and completions of 64 (chat data with a
 * system prompt and history: the prompt is most of each sequence).
 */
export const SHAPES = {
  standard: { pairs: 4, seqLen: 256, promptLen: 64 },
  'long-prompt': { pairs: 4, seqLen: 448, promptLen: 384 },
} as const satisfies Record<string, BatchShape>;
export type ShapeName = keyof typeof SHAPES;
/** The shape this process runs (a child's --shape; `standard` otherwise). */
export let SHAPE: BatchShape = SHAPES.standard;

/** Whether a shape's sequences fit the model's context (the quickstart model's is 256). */
export function shapeFits(model: string, shape: BatchShape): boolean {
  const c = modelConfig(model);
  const context = (c.n_positions ?? c.max_position_embeddings) as number | undefined;
  return context === undefined || shape.seqLen <= context;
}

export function parseShape(name: string): ShapeName {
  if (!(name in SHAPES)) throw new Error(`dpo bench: unknown shape '${name}' (${Object.keys(SHAPES).join(', ')})`);
  return name as ShapeName;
}
/** Loss and optimizer: DPOConfig's defaults (sigmoid, beta 0.1, AdamW, weight decay 0, clip 1.0). */
export const LOSS: CombinedLossOptions = { beta: 0.1, labelSmoothing: 0, lossTypes: ['sigmoid'] };
export const OPTIMIZER = { name: 'adamw', weightDecay: 0, maxGradNorm: 1.0 } as const;
export const LR = 1e-6;
/** The `lora` variant: r 16 on every linear layer (alpha 2r, as the README's example). */
export const LORA = { r: 16, alpha: 32, dropout: 0, targetModules: 'all-linear' as const };
export type Variant = 'full' | 'lora';
const VARIANTS: readonly Variant[] = ['full', 'lora'];

/** bench/engine.ts's gemm shape: the machine's matmul figure mfu is relative to. */
const GEMM = { m: 512, k: 768, n: 3072 } as const;

type Raw = Record<string, unknown>;

const QUICKSTART_FALLBACK: Raw = {
  model_type: 'gpt2', vocab_size: 50257, n_embd: 128, n_layer: 4, n_head: 4, n_positions: 256, n_ctx: 256,
  activation_function: 'gelu_new', layer_norm_epsilon: 1e-5,
};

/** The benchmarked configs (config.json form; bench/torch/dpo_step.py receives the same JSON). */
export function modelConfig(name: string): Raw {
  // "<model>@L<n>": the same shapes with n layers (memory per layer, to extrapolate what does not fit).
  const layers = /^(.+)@L(\d+)$/.exec(name);
  if (layers) {
    const c = modelConfig(layers[1]);
    return { ...c, ['n_layer' in c ? 'n_layer' : 'num_hidden_layers']: Number(layers[2]) };
  }
  switch (name) {
    case 'gpt2-124m':
      return { model_type: 'gpt2', vocab_size: 50257, n_embd: 768, n_layer: 12, n_head: 12, n_positions: 1024, activation_function: 'gelu_new', layer_norm_epsilon: 1e-5 };
    case 'smollm2-135m':
      return {
        model_type: 'llama', vocab_size: 49152, hidden_size: 576, num_hidden_layers: 30, num_attention_heads: 9, num_key_value_heads: 3,
        intermediate_size: 1536, tie_word_embeddings: true, rope_theta: 100000, rms_norm_eps: 1e-5, max_position_embeddings: 8192, hidden_act: 'silu',
      };
    case 'qwen3-0.6b':
      // Qwen/Qwen3-0.6B's config.json (random weights here).
      return {
        model_type: 'qwen3', vocab_size: 151936, hidden_size: 1024, num_hidden_layers: 28, num_attention_heads: 16, num_key_value_heads: 8,
        head_dim: 128, intermediate_size: 3072, tie_word_embeddings: true, rope_theta: 1000000, rms_norm_eps: 1e-6, max_position_embeddings: 40960,
        hidden_act: 'silu', attention_bias: false, use_sliding_window: false, sliding_window: null, max_window_layers: 28,
      };
    case 'quickstart': {
      const file = join(ROOT, 'assets/brown-gpt2/config.json');
      return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as Raw) : QUICKSTART_FALLBACK;
    }
    default:
      throw new Error(`dpo bench: unknown model '${name}' (gpt2-124m, smollm2-135m, qwen3-0.6b, quickstart)`);
  }
}

/** Seeded N(0, std²) (xorshift32 + Box-Muller). */
function normal(n: number, seed: number, std: number): Float32Array {
  let s = (seed * 2654435761) >>> 0 || 1;
  const next = (): number => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return (s + 1) / 4294967297;
  };
  const a = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const r = Math.sqrt(-2 * Math.log(next())) * std;
    const t = 2 * Math.PI * next();
    a[i] = r * Math.cos(t);
    if (i + 1 < n) a[i + 1] = r * Math.sin(t);
  }
  return a;
}

/** Random weights: N(0, 0.02) for matrices and embeddings, norms 1, biases 0 (as HF init). */
export function randomWeights(model: CausalLM): Map<string, Float32Array> {
  const w = new Map<string, Float32Array>();
  model.parameters().forEach((p, i) => {
    const n = p.shape.reduce((a, b) => a * b, 1);
    if (p.shape.length === 1) w.set(p.name, new Float32Array(n).fill(/(ln|norm|layernorm)[^.]*\.weight$/.test(p.name) ? 1 : 0));
    else w.set(p.name, normal(n, i + 1, 0.02));
  });
  return w;
}

/** Random token ids for B pairs: shared prompt, two completions, no padding. */
function randomRows(vocab: number, seed: number): TokenizedPreference[] {
  let s = seed >>> 0;
  const tok = (): number => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s % vocab;
  };
  const ids = (n: number): number[] => Array.from({ length: n }, tok);
  const comp = SHAPE.seqLen - SHAPE.promptLen;
  return Array.from({ length: SHAPE.pairs }, (_, i) => ({
    promptIds: ids(SHAPE.promptLen),
    completionIds: [ids(comp), ids(comp)],
    origin: { file: 'random', line: i + 1 },
  }));
}

export interface FlopCount {
  params: number;
  bodyParams: number;
  tokens: number;
  scored: number;
  total: number;
  /** Parameters the step updates (all, or the LoRA adapters). */
  trainable: number;
}

/**
 * The step's FLOPs. Full: 6·P_body·N·T + 6·V·d·M + 12·L·d_attn·T²·N. LoRA: the frozen weights
 * cost forward + input gradient only (4 instead of 6 per weight and token; the tied head 4·V·d·M),
 * plus the adapters' 6·P_lora·N·T; attention is unchanged (its inputs need gradients).
 */
export function dpoStepFlops(model: CausalLM, variant: Variant = 'full', forward?: { rows: number; seqLen: number }): FlopCount {
  const c = model.config;
  let params = 0;
  let embed = 0;
  for (const p of model.parameters()) {
    const n = p.shape.reduce((a, b) => a * b, 1);
    params += n;
    if (/(wte|wpe|embed_tokens)\.weight$/.test(p.name)) embed += n;
  }
  // The data's tokens (tokens/s counts these) and the rows the forward runs (prefix sharing: fewer, longer).
  const tokens = 2 * SHAPE.pairs * SHAPE.seqLen;
  const N = forward?.rows ?? 2 * SHAPE.pairs;
  const T = forward?.seqLen ?? SHAPE.seqLen;
  const scored = 2 * SHAPE.pairs * (SHAPE.seqLen - SHAPE.promptLen);
  const bodyParams = params - embed;
  const dAttn = c.numHeads * c.headDim;
  const attention = 12 * c.numLayers * dAttn * T * T * N;
  const run = N * T;
  if (variant === 'lora') {
    const loraParams = loraParameters(model, loraConfig(model.modelType, LORA)).reduce((a, p) => a + p.shape[0] * p.shape[1], 0);
    const total = 4 * bodyParams * run + 6 * loraParams * run + 4 * c.vocabSize * c.hiddenSize * scored + attention;
    return { params, bodyParams, tokens, scored, total, trainable: loraParams };
  }
  const total = 6 * bodyParams * run + 6 * c.vocabSize * c.hiddenSize * scored + attention;
  return { params, bodyParams, tokens, scored, total, trainable: params };
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
}

export const round = (x: number, digits = 2): number => Number(x.toFixed(digits));

/** Runs one model in this process and prints its dpo_step line. */
async function runChild(
  name: string,
  opts: { variant: Variant; reference: 'precompute' | 'live'; frozenDtype: FrozenStorage; shape: ShapeName; steps: number; warmup: number; threads: number; profile?: string; memTrace?: boolean; gradientCheckpointing?: boolean; stepsPerRun: number; device?: DeviceRequest; peakTflops?: number; prefixSharing: PrefixSharing },
): Promise<void> {
  SHAPE = SHAPES[opts.shape];
  const device: Device = await resolveDevice(opts.device ?? 'cpu');
  const model = createModel(modelConfig(name));
  const weights = randomWeights(model);
  // As the trainer does: the float32 base is given up tensor by tensor as it is converted.
  const consume = opts.variant === 'lora' && opts.frozenDtype !== 'float32' ? weights : undefined;
  const policy = buildPolicy(model, weights, opts.variant === 'lora' ? LORA : undefined, 0, opts.frozenDtype, { consume });
  const batch = collatePreferences(randomRows(model.config.vocabSize, 7), { padTokenId: 0 });
  const K = batch.numCompletions;
  const n = batch.numSequences;
  // As DPOTrainer's layout (scoredLayoutOf) for pairs, padded.
  const layout: ScoredLayout = { prefixSharing: opts.prefixSharing };
  const packed = scoredPacking(batch, layout);
  const forward = packed ? { rows: packed.rows, seqLen: packed.seqLen } : { rows: n, seqLen: batch.seqLen };
  const shared = packed?.completionShifts !== undefined;
  const feeds: Record<string, HostTensor> = {
    ...scoredFeeds(batch, layout),
    completion_lengths: { data: Float32Array.from(batch.completionLengths), dims: [n] },
    // Plausible reference log-probs of random tokens: about -completion_length·ln(V).
    ref_logps: { data: Float32Array.from({ length: n }, (_, i) => -batch.completionLengths[i] * Math.log(model.config.vocabSize) + (i % 3)), dims: [n] },
  };
  const runtime: RuntimeOptions = { threads: opts.threads, executionProvider: device };
  const label = `${name}-${opts.variant}${opts.gradientCheckpointing ? '-gc' : ''}`;
  if (opts.profile) runtime.profilePrefix = join(opts.profile, `dpo_${label}`);
  const transform = policy.trainTransform ?? ((_g: unknown, p: Record<string, Tensor>) => p);
  // As the trainers' runner applies --gradient-checkpointing.
  const weightsOf = (g: Graph, p: Record<string, Tensor>) => withGradientCheckpointing(transform(g, p), opts.gradientCheckpointing === true);
  const compileStart = performance.now();
  // --reference live: the reference forward each step (frozen weights: LoRA's base; the full variant a copy).
  const refWeights: ReadonlyMap<string, ParamData> =
    opts.variant === 'lora' ? new Map(policy.specs.filter((s) => s.trainable === false).map((s) => [s.name, s.data])) : frozenWeights(new Map([...weights].map(([k, v]) => [k, Float32Array.from(v)])), opts.frozenDtype);
  const reference = opts.reference === 'live' ? await Scorer.create(model, model.parameters().map((p) => ({ ...p, storage: opts.frozenDtype })), runtime, undefined, layout) : undefined;
  const refShapes = new Map(model.parameters().map((p) => [p.name, p.shape] as const));
  // CPU time too: on a loaded machine it says more than the wall clock (ORT's threads included).
  const compileCpu = process.cpuUsage();
  const step = await TrainStep.create(policy.specs, (g, params) => buildDpoLoss(g, policy.model, weightsOf(g, params), LOSS, K, false, undefined, layout), { ...OPTIMIZER }, runtime);
  // --steps-per-run K: K optimizer steps per session.run (TrainStep.steps); a run's time / K per step.
  const perRun = opts.stepsPerRun;
  await step.prepareSteps(perRun);
  const compileMs = performance.now() - compileStart;
  const compileCpuUsage = process.cpuUsage(compileCpu);
  const compileCpuMs = (compileCpuUsage.user + compileCpuUsage.system) / 1000;
  const gpuMemory = device === 'cpu' ? undefined : sampleGpuMemory();
  const times: number[] = [];
  let loss = NaN;
  const warmupRuns = Math.ceil(opts.warmup / perRun);
  for (let i = 0; i < warmupRuns + Math.ceil(opts.steps / perRun); i++) {
    const t0 = performance.now();
    for (let k = 0; reference && k < perRun; k++) {
      const ref = (await reference.score(batch, refWeights, refShapes)).logps;
      feeds.ref_logps = { data: Float32Array.from(ref), dims: [n] };
    }
    const rs = await step.steps(Array.from({ length: perRun }, () => feeds), Array.from({ length: perRun }, () => LR));
    const ms = (performance.now() - t0) / perRun;
    loss = rs[rs.length - 1].loss;
    if (i >= warmupRuns) times.push(ms);
    if (!rs.every((r) => Number.isFinite(r.loss))) throw new Error(`dpo bench: loss ${loss} at run ${i}`);
    if (opts.memTrace) {
      const mb = (x: number): number => round(x / 2 ** 20, 0);
      const before = process.memoryUsage();
      const line: Record<string, number> = { step: i, ms: round(ms, 0), max_rss_mb: round(process.resourceUsage().maxRSS / 1024, 0), rss_mb: mb(before.rss), array_buffers_mb: mb(before.arrayBuffers) };
      // With node --expose-gc: also after a collection (onnxruntime-node's output copies are
      // garbage that lives until the next GC and its finalizers).
      const gc = (globalThis as { gc?: () => void }).gc;
      if (gc) {
        gc();
        await new Promise((r) => setTimeout(r, 50));
        gc();
        const after = process.memoryUsage();
        Object.assign(line, { rss_after_gc_mb: mb(after.rss), array_buffers_after_gc_mb: mb(after.arrayBuffers) });
      }
      console.error(JSON.stringify(line));
    }
  }
  const peakRssMb = process.resourceUsage().maxRSS / 1024;
  const peakDeviceMb = await gpuMemory?.stop();
  const graphFlops = step.matmulFlops(feeds);
  await step.release();
  await reference?.release();

  // MFU: on the CPU against a gemm measured here; on a GPU against its data-sheet FP32 peak.
  const gpu = device === 'cpu' ? undefined : gpuName();
  const peakTflops = opts.peakTflops ?? fp32PeakTflops(gpu);
  let gemmGflops = peakTflops === undefined ? NaN : peakTflops * 1e3;
  // The denominator is the best rate our GEMM reaches on the reference shape and on the step's
  // own two 2-D product shapes with the most FLOPs (MLAS runs big products, e.g. Qwen3's
  // [2048, 1024] x [1024, 3072], much faster than the 512x768x3072 reference: against that
  // alone, a step of mostly big products read mfu > 1).
  const gemmShapes: { m: number; k: number; n: number; gflops: number }[] = [];
  if (device === 'cpu' && times.length) {
    for (const sh of [GEMM, ...graphFlops.shapes.slice(0, 2)]) {
      const gemm = await prepareGemm(sh.m, sh.k, sh.n, opts.threads);
      const gemmTimes: number[] = [];
      for (let i = 0; i < 13; i++) {
        const t0 = performance.now();
        await gemm.run();
        if (i >= 3) gemmTimes.push(performance.now() - t0);
      }
      await gemm.release();
      gemmShapes.push({ m: sh.m, k: sh.k, n: sh.n, gflops: round((2 * sh.m * sh.k * sh.n) / median(gemmTimes) / 1e6, 1) });
    }
    gemmGflops = gemmShapes[0].gflops;
  }
  const peakGemm = gemmShapes.length ? Math.max(...gemmShapes.map((x) => x.gflops)) : gemmGflops;


  // --steps 0 (--startup): the session only, no step.
  const ms = times.length ? median(times) : NaN;
  const f = dpoStepFlops(model, opts.variant, forward);
  // What the step graph multiplies (forward, the backward autodiff built, recomputed checkpoints,
  // lm_head chunks, the rows prefix sharing runs), counted from its MatMul/Gemm nodes at this
  // batch's sizes: mfu's numerator.
  const executed = graphFlops.total;
  const achieved = executed / ms / 1e6;
  console.log(
    JSON.stringify({
      bench: 'dpo_step',
      impl: 'dpo-ts',
      model: name,
      variant: opts.variant,
      reference: opts.reference,
      frozen_dtype: opts.frozenDtype,
      gradient_checkpointing: opts.gradientCheckpointing === true,
      prefix_sharing: `${opts.prefixSharing}${opts.prefixSharing === 'off' ? '' : shared ? ' (shared)' : ' (not shared)'}`,
      rows_x_len: `${forward.rows}x${forward.seqLen}`,
      params: f.params,
      trainable_params: f.trainable,
      tokens_per_second: Number.isFinite(ms) ? round((f.tokens * 1000) / ms, 1) : null,
      ms_per_step: Number.isFinite(ms) ? round(ms, 1) : null,
      peak_rss_mb: round(peakRssMb, 1),
      device,
      ...(device === 'cpu' ? {} : { gpu: gpu ?? null, peak_device_mb: peakDeviceMb ?? null, peak_fp32_tflops: peakTflops ?? null }),
      mfu: Number.isFinite(peakGemm) && Number.isFinite(achieved) ? round(achieved / peakGemm, 3) : null,
      achieved_gflops: Number.isFinite(achieved) ? round(achieved, 1) : null,
      gemm_gflops: round(gemmGflops, 1),
      gemm_peak_gflops: round(peakGemm, 1),
      gemm_shapes: gemmShapes,
      mfu_vs_reference_gemm: Number.isFinite(gemmGflops) && Number.isFinite(achieved) ? round(achieved / gemmGflops, 3) : null,
      step_gflop: round(executed / 1e9, 1),
      matmul_nodes: graphFlops.nodes,
      formula_gflop: round(f.total / 1e9, 1),
      threads: opts.threads,
      steps_per_run: perRun,
      shape: opts.shape,
      pairs_per_second: Number.isFinite(ms) ? round((SHAPE.pairs * 1000) / ms, 3) : null,
      compile_ms: round(compileMs, 0),
      compile_cpu_ms: round(compileCpuMs, 0),
      compile_cache: step.compileStats.cache,
      compile_build_ms: round(step.compileStats.buildMs, 0),
      compile_export_ms: round(step.compileStats.exportMs, 0),
      compile_session_ms: round(step.compileStats.sessionMs, 0),
      onnx_mb: round(step.compileStats.onnxBytes / 2 ** 20, 1),
      batch_pairs: SHAPE.pairs,
      seq_len: SHAPE.seqLen,
      prompt_len: SHAPE.promptLen,
      warmup: opts.warmup,
      steps: opts.steps,
      step_ms: times.map((t) => round(t, 0)),
      loss: Number.isFinite(loss) ? round(loss, 4) : null,
    }),
  );
  if (opts.profile) summariseProfiles(opts.profile, `dpo_${label}`);
}

interface ProfileEvent {
  cat: string;
  name: string;
  dur: number;
  ts: number;
  args?: { op_name?: string; mem_bytes_in_use?: string; mem_arena_held?: string };
}

/**
 * Time by op type, the top nodes, and memory (onnxruntime 1.30's profile records the CPU arena's
 * bytes in use and held after every node) of the last model_run of each profile file with `prefix`.
 */
export function summariseProfiles(dir: string, prefix: string): void {
  for (const file of readdirSync(dir).filter((f) => f.startsWith(prefix) && f.endsWith('.json'))) {
    const events = JSON.parse(readFileSync(join(dir, file), 'utf8')) as ProfileEvent[];
    const runs = events.filter((e) => e.cat === 'Session' && e.name === 'model_run');
    const last = runs[runs.length - 1];
    if (!last) continue;
    const nodes = events.filter((e) => e.cat === 'Node' && e.name.endsWith('_kernel_time') && e.ts >= last.ts && e.ts <= last.ts + last.dur);
    const byOp = new Map<string, { ms: number; count: number }>();
    let total = 0;
    for (const e of nodes) {
      const k = e.args?.op_name ?? '?';
      const v = byOp.get(k) ?? { ms: 0, count: 0 };
      v.ms += e.dur / 1000;
      v.count++;
      byOp.set(k, v);
      total += e.dur / 1000;
    }
    const ops = [...byOp].sort((a, b) => b[1].ms - a[1].ms).map(([k, v]) => ({ op: k, ms: round(v.ms, 1), share: round(v.ms / total, 3), nodes: v.count }));
    const top = [...nodes]
      .sort((a, b) => b.dur - a.dur)
      .slice(0, 15)
      .map((e) => ({ node: e.name.replace(/_kernel_time$/, ''), op: e.args?.op_name, ms: round(e.dur / 1000, 1) }));
    const mb = (e: ProfileEvent, k: 'mem_bytes_in_use' | 'mem_arena_held'): number => Number(e.args?.[k] ?? 0) / 2 ** 20;
    const peak = nodes.reduce<ProfileEvent | undefined>((p, e) => (!p || mb(e, 'mem_bytes_in_use') > mb(p, 'mem_bytes_in_use') ? e : p), undefined);
    const memory = peak && {
      peak_in_use_mb: round(mb(peak, 'mem_bytes_in_use'), 0),
      peak_node: peak.name.replace(/_kernel_time$/, ''),
      peak_node_position: `${nodes.indexOf(peak) + 1}/${nodes.length}`,
      arena_held_mb: round(Math.max(...nodes.map((e) => mb(e, 'mem_arena_held'))), 0),
    };
    console.log(JSON.stringify({ bench: 'dpo_profile', file, run_ms: round(last.dur / 1000, 1), kernel_ms: round(total, 1), memory, by_op: ops, top_nodes: top }));
  }
}

/** Runs a command, returning the dpo_step JSON line it printed (stderr passes through). */
function runLine(cmd: string, argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<Record<string, unknown>[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'inherit'], env });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`${cmd} ${argv.join(' ')} exited with ${code}\n${out}`));
      resolve(out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>));
    });
  });
}

function runTs(model: string, rest: string[], variant: Variant = 'full', env: NodeJS.ProcessEnv = process.env): Promise<Record<string, unknown>[]> {
  return runLine(process.execPath, [...process.execArgv, process.argv[1], 'dpo', '--child', model, '--variant', variant, ...rest], env);
}

function runTorch(model: string, rest: string[], gemmGflops: number | undefined, shape: BatchShape = SHAPE): Promise<Record<string, unknown>[]> {
  const python = process.env.DPO_BENCH_PYTHON ?? '/usr/bin/python3';
  const argv = [
    join(HERE, 'torch/dpo_step.py'), '--model', model, '--config-json', JSON.stringify(modelConfig(model)),
    '--pairs', String(shape.pairs), '--seq-len', String(shape.seqLen), '--prompt-len', String(shape.promptLen), ...rest,
  ];
  if (gemmGflops) argv.push('--gemm-gflops', String(gemmGflops));
  return runLine(python, argv, { ...process.env, OMP_NUM_THREADS: flag(rest, 'threads') ?? '2' });
}

/**
 * `--steps-per-run 1,2,4`: each model and variant once per K, each in its own child, then one
 * "dpo_steps_per_run" line per model and variant with every K's ms/step, peak RSS and compile
 * time, and the ratios to the first K listed.
 */
async function compareStepsPerRun(models: readonly string[], variants: readonly Variant[], rest: readonly string[], perRun: readonly number[]): Promise<void> {
  for (const m of models) {
    for (const v of variants) {
      const lines: Record<string, unknown>[] = [];
      for (const k of perRun) {
        for (const line of await runTs(m, [...rest, '--steps-per-run', String(k)], v)) {
          console.log(JSON.stringify(line));
          if (line.bench === 'dpo_step') lines.push(line);
        }
      }
      const base = lines[0];
      console.log(
        JSON.stringify({
          bench: 'dpo_steps_per_run',
          model: m,
          variant: v,
          runs: lines.map((l) => ({
            steps_per_run: l.steps_per_run,
            ms_per_step: l.ms_per_step,
            peak_rss_mb: l.peak_rss_mb,
            compile_ms: l.compile_ms,
            time_ratio: round((l.ms_per_step as number) / (base.ms_per_step as number), 3),
            rss_ratio: round((l.peak_rss_mb as number) / (base.peak_rss_mb as number), 3),
          })),
        }),
      );
    }
  }
}

export function parseVariant(v: string): Variant {
  if (!(VARIANTS as readonly string[]).includes(v)) throw new Error(`dpo bench: unknown variant '${v}' (${VARIANTS.join(', ')})`);
  return v as Variant;
}

/**
 * `--startup`: seconds until the step's session is ready, the first time and again. Per case, a
 * fresh compile-cache folder, then two children one after the other: the first builds, exports and
 * optimises the graph (and stores ORT's optimised model), the second finds it. One
 * "dpo_startup" line per case with both compile times, where they went (our build + autodiff,
 * ONNX export, ORT session) and second/first; the losses of the two sessions' first steps must be
 * equal (--steps 0 skips the step). Default cases: quickstart and gpt2-124m (full), and the
 * Qwen3-0.6B-shaped LoRA step with gradient checkpointing; --models replaces them (with
 * --variants' first variant and --gradient-checkpointing as given).
 */
async function compareStartup(args: string[], rest: readonly string[]): Promise<void> {
  const models = flag(args, 'models');
  const cases = models
    ? models.split(',').map((m) => ({ model: m, variant: parseVariant((flag(args, 'variants') ?? 'full').split(',')[0]), gc: args.includes('--gradient-checkpointing') }))
    : [
        { model: 'quickstart', variant: 'full' as Variant, gc: false },
        { model: 'gpt2-124m', variant: 'full' as Variant, gc: false },
        { model: 'qwen3-0.6b', variant: 'lora' as Variant, gc: true },
      ];
  const base = rest.filter((_, i, a) => a[i] !== '--gradient-checkpointing');
  for (const c of cases) {
    const dir = mkdtempSync(join(tmpdir(), 'dpo-bench-compile-cache-'));
    try {
      const env = { ...process.env, DPO_TS_COMPILE_CACHE: dir };
      const runs: Record<string, unknown>[] = [];
      for (const which of ['first', 'second']) {
        for (const line of await runTs(c.model, [...base, ...(c.gc ? ['--gradient-checkpointing'] : [])], c.variant, env)) {
          console.log(JSON.stringify({ ...line, startup_run: which }));
          if (line.bench === 'dpo_step') runs.push(line);
        }
      }
      const [a, b] = runs;
      const pick = (l: Record<string, unknown>) => ({
        compile_ms: l.compile_ms, compile_cpu_ms: l.compile_cpu_ms, build_ms: l.compile_build_ms, export_ms: l.compile_export_ms, session_ms: l.compile_session_ms, cache: l.compile_cache, loss: l.loss,
      });
      console.log(
        JSON.stringify({
          bench: 'dpo_startup',
          model: c.model,
          variant: c.variant,
          gradient_checkpointing: c.gc,
          first: pick(a),
          second: pick(b),
          second_over_first: round((b.compile_ms as number) / (a.compile_ms as number), 3),
          second_over_first_cpu: round((b.compile_cpu_ms as number) / (a.compile_cpu_ms as number), 3),
          same_loss: a.loss === b.loss,
          onnx_mb: a.onnx_mb,
          load_average: loadavg().map((x) => round(x, 1)),
        }),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
}

export async function main(args: string[]): Promise<void> {
  const startup = args.includes('--startup');
  // --steps 0 (with --startup, and in its children): compile only.
  const steps = Math.max(startup || args.includes('--child') ? 0 : 1, Number(flag(args, 'steps') ?? (startup ? 1 : 3)));
  const warmup = Math.max(0, Number(flag(args, 'warmup') ?? (startup ? 0 : 3)));
  const threads = Number(flag(args, 'threads') ?? 2);
  const profile = flag(args, 'profile');
  const child = flag(args, 'child');
  const reference = flag(args, 'reference') ?? 'precompute';
  if (reference !== 'precompute' && reference !== 'live') throw new Error(`dpo bench: --reference takes precompute or live, got '${reference}'`);
  const frozenDtype = flag(args, 'frozen-dtype') ?? 'float32';
  if (frozenDtype !== 'float32' && frozenDtype !== 'float16') throw new Error(`dpo bench: --frozen-dtype takes float32 or float16, got '${frozenDtype}'`);
  const gradientCheckpointing = args.includes('--gradient-checkpointing');
  const device = (flag(args, 'device') ?? 'cpu') as DeviceRequest;
  if (!(DEVICE_REQUESTS as readonly string[]).includes(device)) throw new Error(`dpo bench: --device takes ${DEVICE_REQUESTS.join(', ')}, got '${device}'`);
  const peakTflops = flag(args, 'peak-tflops') === undefined ? undefined : Number(flag(args, 'peak-tflops'));
  const perRunList = (flag(args, 'steps-per-run') ?? '1').split(',').map((k) => {
    const n = Number(k);
    if (!Number.isInteger(n) || n < 1) throw new Error(`dpo bench: --steps-per-run takes positive integers, got '${k}'`);
    return n;
  });
  const prefixSharing = (flag(args, 'prefix-sharing') ?? 'auto') as PrefixSharing;
  if (!['auto', 'on', 'off'].includes(prefixSharing)) throw new Error(`dpo bench: --prefix-sharing takes auto, on, off, got '${prefixSharing}'`);
  if (child) {
    const variant = parseVariant(flag(args, 'variant') ?? 'full');
    return runChild(child, { variant, reference, frozenDtype, shape: parseShape(flag(args, 'shape') ?? 'standard'), steps, warmup, threads, profile, memTrace: args.includes('--mem-trace'), gradientCheckpointing, stepsPerRun: perRunList[0], device, peakTflops, prefixSharing });
  }

  const models = (flag(args, 'models') ?? 'gpt2-124m,smollm2-135m,quickstart').split(',');
  const vsTorch = args.includes('--vs-torch');
  // --vs-torch runs both batch shapes by default; otherwise the standard one.
  const shapes = (flag(args, 'shapes') ?? (vsTorch ? Object.keys(SHAPES).join(',') : 'standard')).split(',').map(parseShape);
  const rest = [
    '--steps', String(steps), '--warmup', String(warmup), '--threads', String(threads), '--device', device, '--reference', reference, '--frozen-dtype', frozenDtype,
    ...(peakTflops === undefined ? [] : ['--peak-tflops', String(peakTflops)]),
    ...(gradientCheckpointing ? ['--gradient-checkpointing'] : []),
    '--prefix-sharing', prefixSharing,
  ];
  // Torch can be given fewer warm-up steps (its allocator returns big tensors to the OS anyway).
  const torchRest = ['--steps', String(steps), '--warmup', flag(args, 'torch-warmup') ?? String(warmup), '--threads', String(threads)];
  if (startup) return compareStartup(args, rest);
  if (!vsTorch) {
    const variants = (flag(args, 'variants') ?? VARIANTS.join(',')).split(',').map(parseVariant);
    for (const shape of shapes) {
      const shaped = [...rest, '--shape', shape];
      if (perRunList.length > 1 || perRunList[0] > 1) {
        await compareStepsPerRun(models, variants, shaped, perRunList);
        continue;
      }
      for (const m of models.filter((x) => shapeFits(x, SHAPES[shape]))) {
        const steps = new Map<Variant, Record<string, unknown>>();
        for (const v of variants) {
          for (const line of await runTs(m, profile ? [...shaped, '--profile', profile] : shaped, v)) {
            console.log(JSON.stringify(line));
            if (line.bench === 'dpo_step') steps.set(v, line);
          }
        }
        const [full, lora] = [steps.get('full'), steps.get('lora')];
        if (full && lora) {
          const ratio = (k: string): number => round((lora[k] as number) / (full[k] as number), 2);
          console.log(JSON.stringify({ bench: 'dpo_lora_vs_full', model: m, shape, tokens_per_second_ratio: ratio('tokens_per_second'), peak_rss_ratio: ratio('peak_rss_mb') }));
        }
      }
    }
    return;
  }
  const rounds = Math.max(1, Number(flag(args, 'rounds') ?? 3));
  type Runs = { model: string; shape: ShapeName; ts: Record<string, unknown>[]; torch: Record<string, unknown>[] };
  const results: Runs[] = shapes.flatMap((shape) => models.map((model) => ({ model, shape, ts: [], torch: [] })));
  for (const res of results.filter((x) => !shapeFits(x.model, SHAPES[x.shape]))) {
    console.log(JSON.stringify({ bench: 'dpo_vs_torch', model: res.model, shape: res.shape, skipped: `sequences of ${SHAPES[res.shape].seqLen} tokens exceed the model's context` }));
  }
  results.splice(0, results.length, ...results.filter((x) => shapeFits(x.model, SHAPES[x.shape])));
  for (let r = 0; r < rounds; r++) {
    for (const res of results) {
      // Alternate which goes first so that neither always follows the other.
      const order = r % 2 === 0 ? ['ts', 'torch'] : ['torch', 'ts'];
      for (const which of order) {
        // The torch line's mfu shares the dpo-ts line's denominator (same shapes on the full step).
        const last = res.ts[res.ts.length - 1];
        const lastGemm = last ? ((last.gemm_peak_gflops ?? last.gemm_gflops) as number) : undefined;
        const lines = which === 'ts' ? await runTs(res.model, [...rest, '--shape', res.shape]) : await runTorch(res.model, torchRest, lastGemm, SHAPES[res.shape]);
        for (const l of lines) {
          console.log(JSON.stringify({ ...l, shape: res.shape, round: r + 1 }));
          if (l.bench === 'dpo_step') (which === 'ts' ? res.ts : res.torch).push(l);
        }
      }
    }
  }
  for (const res of results) {
    const med = (xs: Record<string, unknown>[], k: string): number => median(xs.map((x) => x[k] as number));
    const tsTps = med(res.ts, 'tokens_per_second');
    const torchTps = med(res.torch, 'tokens_per_second');
    const shape = SHAPES[res.shape];
    const pairsPerSecond = (xs: Record<string, unknown>[]): number => round((shape.pairs * 1000) / med(xs, 'ms_per_step'), 3);
    console.log(
      JSON.stringify({
        bench: 'dpo_vs_torch',
        model: res.model,
        shape: res.shape,
        pairs: shape.pairs,
        prompt_len: shape.promptLen,
        completion_len: shape.seqLen - shape.promptLen,
        rounds,
        params: res.ts[0]?.params,
        // The dpo-ts side runs the trainer's defaults; which prefix sharing ran, where the step reports it.
        prefix_sharing: res.ts[0]?.prefix_sharing ?? null,
        dpo_ts_pairs_per_second: pairsPerSecond(res.ts),
        torch_pairs_per_second: pairsPerSecond(res.torch),
        pairs_ratio: round(pairsPerSecond(res.ts) / pairsPerSecond(res.torch), 2),
        dpo_ts_tokens_per_second: tsTps,
        torch_tokens_per_second: torchTps,
        ratio: round(tsTps / torchTps, 2),
        dpo_ts_ms_per_step: med(res.ts, 'ms_per_step'),
        torch_ms_per_step: med(res.torch, 'ms_per_step'),
        dpo_ts_peak_rss_mb: med(res.ts, 'peak_rss_mb'),
        torch_peak_rss_mb: med(res.torch, 'peak_rss_mb'),
        rss_ratio: round(med(res.ts, 'peak_rss_mb') / med(res.torch, 'peak_rss_mb'), 2),
        dpo_ts_mfu: med(res.ts, 'mfu'),
        torch_mfu: med(res.torch, 'mfu'),
      }),
    );
  }
}
