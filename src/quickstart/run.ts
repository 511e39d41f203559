/**
 * `dpo quickstart`: the DPO paper's controlled-sentiment experiment in miniature, end to end on a
 * laptop CPU. Sample several continuations per prompt from the shipped model, rank them with a
 * ground-truth scorer (VADER sentiment), build preference pairs, train DPO with the shipped model
 * as the reference, then measure reward and KL(pi || pi_ref) of fresh samples on held-out
 * prompts before and after, and write an HTML report.
 */
import type { DeviceRequest } from '../engine/device.js';
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Generator } from '../generate/generator.js';
import { resolveEosTokenIds } from '../generate/text.js';
import { DpoError } from '../errors.js';
import { loadPretrained } from '../models/pretrained.js';
import { checkpointModelWeights, listCheckpoints } from '../train/core/checkpoint.js';
import { DPOTrainer } from '../train/dpo/trainer.js';
import { createProgress, type ProgressReporter } from '../progress.js';
import { HELD_OUT_PROMPTS, TRAIN_PROMPTS } from '../data/builtin-prompts.js';
import { getScorer } from '../eval/scorers.js';
import { completionLogps, estimateKl, type TokenSequence } from '../eval/kl.js';
import { writeReport, type FrontierPoint, type SampleRow } from './report.js';

/** The model `npm install` ships: a 7M-parameter GPT-2 pretrained on the Brown corpus. */
export const SHIPPED_MODEL = fileURLToPath(new URL('../../assets/brown-gpt2', import.meta.url));


/** The quickstart's defaults (written once: `dpo quickstart --help` shows these). */
export const QUICKSTART_DEFAULTS = {
  output: 'dpo-quickstart',
  scorer: 'sentiment',
  samplesPerPrompt: 6,
  evalSamplesPerPrompt: 8,
  maxNewTokens: 24,
  steps: 120,
  batchSize: 16,
  beta: 0.1,
  learningRate: 1e-4,
  seed: 0,
} as const;

export interface QuickstartOptions {
  /** Policy and reference model (default: the shipped model). */
  model?: string;
  /** Output folder (default ./dpo-quickstart). */
  output?: string;
  trainPrompts?: readonly string[];
  heldOutPrompts?: readonly string[];
  /** Ground-truth reward of a continuation, by name (see src/eval/scorers.ts; default 'sentiment'). */
  scorer?: string;
  samplesPerPrompt?: number;
  evalSamplesPerPrompt?: number;
  maxNewTokens?: number;
  temperature?: number;
  topK?: number;
  steps?: number;
  batchSize?: number;
  beta?: number;
  learningRate?: number;
  /** Frontier points: the policy is evaluated at this many evenly spaced checkpoints. */
  frontierPoints?: number;
  seed?: number;
  threads?: number;
  /** Where graphs run (--device); default cpu. */
  device?: DeviceRequest;
  progress?: ProgressReporter;
  /** Aborting it stops the DPO training after its current step; the report covers the steps done. */
  signal?: AbortSignal;
}

export interface QuickstartSummary {
  output: string;
  report: string;
  pairsFile: string;
  pairs: number;
  before: { reward: number; kl: number; accuracy: number };
  after: { reward: number; kl: number; accuracy: number };
  frontier: FrontierPoint[];
  samples: SampleRow[];
  seconds: number;
}

interface Sampled {
  prompt: string;
  completion: string;
  reward: number;
  sequence: TokenSequence;
}

export async function runQuickstart(o: QuickstartOptions): Promise<QuickstartSummary> {
  const started = Date.now();
  const progress = o.progress ?? createProgress();
  const output = resolve(o.output ?? QUICKSTART_DEFAULTS.output);
  const modelRef = o.model ?? SHIPPED_MODEL;
  const trainPrompts = o.trainPrompts ?? TRAIN_PROMPTS;
  const heldOut = o.heldOutPrompts ?? HELD_OUT_PROMPTS;
  const k = o.samplesPerPrompt ?? QUICKSTART_DEFAULTS.samplesPerPrompt;
  const evalK = o.evalSamplesPerPrompt ?? QUICKSTART_DEFAULTS.evalSamplesPerPrompt;
  const steps = o.steps ?? QUICKSTART_DEFAULTS.steps;
  const seed = o.seed ?? QUICKSTART_DEFAULTS.seed;
  const runtime = { threads: o.threads, executionProvider: o.device };
  const scorerName = o.scorer ?? QUICKSTART_DEFAULTS.scorer;
  const score = getScorer(scorerName).score;
  if (k < 2) throw new DpoError('quickstart: samples per prompt must be at least 2 to make pairs');
  await mkdir(output, { recursive: true });

  progress.log(`model: ${modelRef}`);
  const reference = await loadPretrained(modelRef);
  const tokenizer = reference.tokenizer;
  if (!tokenizer) throw new DpoError(`${reference.dir}: no tokenizer.json; the quickstart needs a tokenizer`);
  const generator = await Generator.create(reference.model, { runtime });
  const eos = resolveEosTokenIds(reference.model, tokenizer, reference.generationConfig);
  // Pairs are sampled with the user's temperature / top-k; evaluation samples are pure (temperature 1,
  // no top-k), the only way the mean of log pi - log pi_ref over them is an unbiased KL(pi || pi_ref).
  const pairSampling = { maxNewTokens: o.maxNewTokens ?? QUICKSTART_DEFAULTS.maxNewTokens, temperature: o.temperature ?? 1, topK: o.topK ?? 50 };
  const evalSampling = { ...pairSampling, temperature: 1, topK: 0 };

  const sample = async (weights: ReadonlyMap<string, Float32Array>, prompts: readonly string[], n: number, s: number, label: string, sampling = pairSampling): Promise<Sampled[][]> => {
    progress.start(label, prompts.length * n);
    const r = await generator.generateText(weights, tokenizer, prompts, {
      ...sampling,
      doSample: true,
      numSamples: n,
      seed: s,
      eosTokenIds: eos,
      batchSize: 32,
      onProgress: (done) => progress.update(done),
    });
    progress.stop();
    return Promise.all(
      prompts.map((prompt, i) =>
        Promise.all(
          r.completions[i].map(async (completion, j) => ({
            prompt,
            completion,
            reward: await score(prompt, completion),
            sequence: { promptIds: r.promptTokenIds[i], completionIds: r.tokenIds[i][j] },
          })),
        ),
      ),
    );
  };

  try {
    // 1. Preference pairs from the reference's own samples, labelled by the scorer.
    const trainSamples = await sample(reference.weights, trainPrompts, k, seed, 'sampling');
    const pairs = preferencePairs(trainSamples);
    const heldOutPairs = preferencePairs(await sample(reference.weights, heldOut, k, seed + 1, 'held-out pairs'));
    const pairsFile = join(output, 'preferences.jsonl');
    const heldOutFile = join(output, 'heldout_preferences.jsonl');
    await writeFile(pairsFile, pairs.map((p) => JSON.stringify(p)).join('\n') + '\n');
    await writeFile(heldOutFile, heldOutPairs.map((p) => JSON.stringify(p)).join('\n') + '\n');
    if (!heldOutPairs.length) progress.log('no held-out pairs with distinct rewards: implicit-reward accuracy will not be measured');
    progress.log(`${pairs.length} preference pairs from ${trainPrompts.length} prompts x ${k} samples -> ${pairsFile}`);
    if (pairs.length < 8) throw new DpoError(`quickstart: only ${pairs.length} pairs with distinct rewards; use more prompts or samples`);

    // 2. Before: fresh samples of the reference on held-out prompts.
    const evaluate = async (weights: ReadonlyMap<string, Float32Array>, label: string): Promise<{ reward: number; kl: number; samples: Sampled[][] }> => {
      const samples = await sample(weights, heldOut, evalK, seed + 2, label, evalSampling);
      const flat = samples.flat();
      const seqs = flat.map((s) => s.sequence);
      const logps = (w: ReadonlyMap<string, Float32Array>): Promise<Float64Array> =>
        completionLogps(reference.model, w, seqs, { batchSize: 16, padTokenId: tokenizer.padTokenId, runtime });
      const pol = await logps(weights);
      const ref = weights === reference.weights ? pol : await logps(reference.weights);
      return { reward: mean(flat.map((s) => s.reward)), kl: estimateKl(pol, ref).mean, samples };
    };
    const before = await evaluate(reference.weights, 'evaluating the reference');

    // 3. DPO from the shipped model, which is also the reference.
    const policy = await loadPretrained(modelRef);
    const trainer = new DPOTrainer(
      {
        model: modelRef,
        data: pairsFile,
        evalData: heldOutPairs.length ? heldOutFile : undefined,
        output: join(output, 'model'),
        maxSteps: steps,
        batchSize: o.batchSize ?? QUICKSTART_DEFAULTS.batchSize,
        beta: o.beta ?? QUICKSTART_DEFAULTS.beta,
        learningRate: o.learningRate ?? QUICKSTART_DEFAULTS.learningRate,
        lrScheduler: 'constant',
        warmupSteps: Math.min(5, steps - 1),
        loggingSteps: 2,
        saveSteps: Math.max(1, Math.floor(steps / (o.frontierPoints ?? 3))),
        // Held-out curves in the report: evaluate at every checkpoint too.
        evalSteps: heldOutPairs.length ? Math.max(1, Math.floor(steps / (o.frontierPoints ?? 3))) : undefined,
        seed,
        threads: o.threads,
        device: o.device,
        cacheDir: join(output, 'cache'),
      },
      { policy, progress, signal: o.signal },
    );
    const trained = await trainer.train();

    // 4. After, and the reward/KL frontier along the way (checkpoints).
    const frontier: FrontierPoint[] = [{ step: 0, reward: before.reward, kl: before.kl }];
    for (const c of (await listCheckpoints(join(output, 'model'))).reverse()) {
      // The last step's checkpoint is the trained policy, evaluated below.
      if (c.step >= trained.steps) continue;
      const w = await checkpointModelWeights(c.dir, reference.weights);
      const e = await evaluate(w, `evaluating step ${c.step}`);
      frontier.push({ step: c.step, reward: e.reward, kl: e.kl });
    }
    const after = await evaluate(policy.weights, 'evaluating the trained policy');
    frontier.push({ step: trained.steps, reward: after.reward, kl: after.kl });

    const samples: SampleRow[] = heldOut.slice(0, 6).map((prompt, i) => ({
      prompt,
      before: before.samples[i][0].completion,
      beforeReward: before.samples[i][0].reward,
      after: after.samples[i][0].completion,
      afterReward: after.samples[i][0].reward,
    }));
    const summary: QuickstartSummary = {
      output,
      report: join(output, 'report.html'),
      pairsFile,
      pairs: pairs.length,
      before: { reward: before.reward, kl: before.kl, accuracy: 0 },
      after: { reward: after.reward, kl: after.kl, accuracy: trained.evalMetrics?.['eval_rewards/accuracies'] ?? NaN },
      frontier,
      samples,
      seconds: (Date.now() - started) / 1000,
    };
    await writeReport(summary.report, {
      modelRef,
      scorerName,
      metricsFile: join(output, 'model', 'metrics.jsonl'),
      summary,
      settings: { steps, beta: o.beta ?? QUICKSTART_DEFAULTS.beta, learningRate: o.learningRate ?? QUICKSTART_DEFAULTS.learningRate, samplesPerPrompt: k, trainPrompts: trainPrompts.length, heldOutPrompts: heldOut.length },
    });
    await writeFile(join(output, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`);
    return summary;
  } finally {
    await generator.release();
  }
}

function mean(xs: readonly number[]): number {
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0;
}

/**
 * All pairs of a prompt's samples whose rewards differ (4 samples give up to 6 pairs, as in the
 * paper), the higher-reward sample chosen. Identical completions never make a pair.
 */
export function preferencePairs(samples: readonly Sampled[][]): { prompt: string; chosen: string; rejected: string; chosen_reward: number; rejected_reward: number }[] {
  const pairs = [];
  for (const group of samples) {
    for (let a = 0; a < group.length; a++) {
      for (let b = a + 1; b < group.length; b++) {
        const [x, y] = group[a].reward >= group[b].reward ? [group[a], group[b]] : [group[b], group[a]];
        if (x.reward === y.reward || x.completion === y.completion || !x.completion.trim() || !y.completion.trim()) continue;
        pairs.push({ prompt: x.prompt, chosen: x.completion, rejected: y.completion, chosen_reward: x.reward, rejected_reward: y.reward });
      }
    }
  }
  return pairs;
}
