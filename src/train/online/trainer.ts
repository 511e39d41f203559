/**
 * OnlineDPOTrainer: online DPO (Guo et al. 2024, "Direct Language Model Alignment from Online AI
 * Feedback"), as TRL's OnlineDPOTrainer.
 *
 * Each micro-batch: B prompts -> two completions per prompt sampled from the CURRENT policy
 * (temperature / top-k / top-p, the shared generator with the policy's LoRA adapters when
 * training LoRA) -> a reward model, a scorer or an LLM judge picks the chosen one (rankers.ts) ->
 * reference log-probs of both -> one DPO step (sigmoid or IPO on summed log-probs, loss.ts) on
 * (chosen, rejected). It runs on the shared runner: checkpoints, --resume, signals, LoRA, the
 * output guard and metrics.jsonl are those of every trainer.
 *
 * Randomness: the prompt order is a PreferenceBatcher's (a pure function of seed and epoch) and
 * the samples of micro-batch m of step s are drawn with the seed deriveSeed(seed, SAMPLES, s, m)
 * (each sequence then has its own stream, generator.ts). So a checkpoint's step and batcher
 * position are the whole sampling RNG state: a resumed run draws exactly the samples the
 * uninterrupted run would have, and ends with the same bytes.
 */
import type { PreferenceBatch } from '../../data/collate.js';
import { collatePreferences } from '../../data/collate.js';
import { PreferenceBatcher } from '../../data/batcher.js';
import { deriveSeed } from '../../data/rng.js';
import type { TokenizedPreference } from '../../data/tokenize.js';
import type { HostTensor } from '../../engine/runtime.js';
import { resolveThreads } from '../../engine/host.js';
import { DpoError } from '../../errors.js';
import { getScorer } from '../../eval/scorers.js';
import { Generator } from '../../generate/generator.js';
import { promptsFrom, type PromptRow } from '../../generate/prompts.js';
import { encodePrompt, resolveEosTokenIds, truncatePromptIds, type TextGenerationResult } from '../../generate/text.js';
import { loadPretrained, type Pretrained } from '../../models/pretrained.js';
import { TRAIN_PROMPTS } from '../../data/builtin-prompts.js';
import { preferenceTokens } from '../core/loop.js';
import { MetricsAccumulator } from '../core/metrics.js';
import { savePolicy, type Policy } from '../core/policy.js';
import type { ProgressReporter } from '../../progress.js';
import { guardedRun, loadPolicy, resumeOptions, runTrainer, TrainerBase, trainingDropout, type StopOptions, type TrainerResult } from '../core/runner.js';
import { Scorer } from '../../scoring/scorer.js';
import { scoredFeeds } from '../../scoring/sequence-logps.js';
import { betaForEpoch, parseOnlineDpoConfig, type OnlineDPOConfig, type OnlineDPOConfigInput } from './config.js';
import { buildOnlineDpoLoss } from './loss.js';
import { onlineStepMetrics, pairIndices } from './pairs.js';
import { openRanker, type PairRanker } from './rankers.js';

/** One prompt's ranked pair, as trained on (for `onPairs`). */
export interface OnlinePair {
  prompt: string;
  chosen: string;
  rejected: string;
  /** Prompt ids and completion ids (EOS included when sampled) as the model read them. */
  promptIds: number[];
  chosenIds: number[];
  rejectedIds: number[];
  /** Rewards after the missing-EOS penalty (absent with a judge). */
  chosenScore?: number;
  rejectedScore?: number;
  /** Whether the chosen sample was the first of the two drawn. */
  firstChosen: boolean;
}

export interface OnlineDPOTrainerOptions extends StopOptions {
  /**
   * An already loaded starting policy (skips loading `config.model`). Trained in place: when train()
   * resolves, `policy.weights` holds the trained weights (with LoRA, the base weights stay as they
   * were and the adapters are saved). Pass a copy to keep the original.
   */
  policy?: Pretrained;
  progress?: ProgressReporter;
  /** Called with every micro-batch's pairs before its step (`step`: steps done before it). */
  onPairs?: (info: { step: number; microBatch: number; pairs: OnlinePair[] }) => void;
  /** The judge's fetch (tests). */
  fetch?: typeof fetch;
}

/** Seed streams of deriveSeed (the prompt order uses the batcher's own). */
const STREAMS = { samples: 2, eval: 4 } as const;

/** What a sampled and ranked micro-batch adds to its prompt batch. */
interface RankedBatch {
  feeds: Record<string, HostTensor>;
  tokens: number;
  /** [2B] chosen then rejected. */
  reference: Float64Array;
  scores?: Float64Array;
  containsEos: boolean[];
  beta: number;
}

export class OnlineDPOTrainer extends TrainerBase<OnlineDPOConfig> {
  constructor(config: OnlineDPOConfigInput | OnlineDPOConfig, private readonly options: OnlineDPOTrainerOptions = {}) {
    super(parseOnlineDpoConfig(config), options);
    if (this.config.scorer) getScorer(this.config.scorer);
    // Explicit, so that the resume digest holds it: online DPO trains on its own samples, and
    // another thread count rounds the logits differently, flips a sampled token and diverges the run.
    this.config.threads = resolveThreads(this.config.threads);
  }

  /** Trains (see the module comment); --output is checked and locked before any work. */
  async train(): Promise<TrainerResult> {
    const c = this.config;
    return guardedRun(c, 'dpo online', resumeOptions(c, ONLINE_RESUME_KEYS, 'online'), this.progress, [c.refModel, c.rewardModel], (digest) => this.run(digest));
  }

  private async run(digest: string): Promise<TrainerResult> {
    const c = this.config;
    const log = (m: string): void => this.progress.log(m);
    const { pretrained, tokenizer, policy, maxLength } = await loadPolicy(c, this.progress, this.options.policy);
    const maxPromptTokens = maxLength - c.maxNewTokens;
    if (maxPromptTokens < 1) throw new DpoError(`maxNewTokens (${c.maxNewTokens}) leaves no room for a prompt in the model's ${maxLength} positions`);
    const prompts = await promptsFrom(c.prompts ?? TRAIN_PROMPTS, tokenizer, 'prompts', log);
    const evalPrompts = c.evalPrompts ? await promptsFrom(c.evalPrompts, tokenizer, 'evalPrompts', log) : undefined;
    // Prompt-only rows for the batcher: it orders and cuts the prompts (and resumes) as it does preference rows.
    const promptRows: TokenizedPreference[] = prompts.map((p) => ({
      promptIds: truncatePromptIds(encodePrompt(tokenizer, policy.model, p.text), maxPromptTokens, tokenizer.bosTokenId),
      completionIds: [[]],
      origin: p.origin,
    }));

    const resources: { release(): Promise<void> }[] = [];
    try {
      const ranker = await openRanker(c, { runtime: this.runtime, log, fetch: this.options.fetch });
      resources.push(ranker);
      const ref = await this.reference(pretrained, policy);
      const refScorer = await Scorer.create(ref.model.model, ref.model.model.parameters(), this.runtime);
      resources.push(refScorer);
      const generator = await Generator.create(policy.model, { inputs: policy.specs, transform: policy.transform, runtime: this.runtime });
      resources.push(generator);
      const eos = resolveEosTokenIds(policy.model, tokenizer, pretrained.generationConfig);
      const sample = (params: ReadonlyMap<string, Float32Array>, texts: readonly string[], numSamples: number, seed: number): Promise<TextGenerationResult> =>
        generator.generateText(params, tokenizer, texts, {
          maxNewTokens: c.maxNewTokens,
          doSample: true,
          temperature: c.temperature,
          topK: c.topK,
          topP: c.topP,
          numSamples,
          seed,
          eosTokenIds: eos,
          batchSize: numSamples * c.batchSize,
          maxPromptTokens,
          // A stop request ends the sampling within a decoding step (the loop drops that step).
          stopRequested: () => this.stop.stopped,
        });
      const refLogps = async (batch: PreferenceBatch): Promise<Float64Array> => (await refScorer.score(batch, ref.weights, ref.shapes)).logps;
      const padTokenId = tokenizer.padTokenId;

      const ranked = new WeakMap<PreferenceBatch, RankedBatch>();
      const rankBatch = async (batch: PreferenceBatch, params: ReadonlyMap<string, Float32Array>, step: number, micro: number, beta: number): Promise<RankedBatch> => {
        const rows = (batch.rowIndices ?? []).map((i) => prompts[i]);
        const B = rows.length;
        const r = await sample(params, rows.map((p) => p.text), 2, deriveSeed(c.seed, STREAMS.samples, step, micro));
        const texts = [...r.completions.map((s) => s[0]), ...r.completions.map((s) => s[1])];
        const ids = [...r.tokenIds.map((s) => s[0]), ...r.tokenIds.map((s) => s[1])];
        const eosFlags = [...r.finishReasons.map((s) => s[0] === 'eos'), ...r.finishReasons.map((s) => s[1] === 'eos')];
        const { firstChosen, scores } = await ranker.rank(rows, texts.slice(0, B), texts.slice(B), eosFlags);
        const { chosen, rejected } = pairIndices(firstChosen);
        const order = [...chosen, ...rejected];
        const pairRows: TokenizedPreference[] = rows.map((p, i) => ({ promptIds: r.promptTokenIds[i], completionIds: [ids[chosen[i]], ids[rejected[i]]], origin: p.origin }));
        const pairs = collatePreferences(pairRows, { padTokenId });
        const reference = await refLogps(pairs);
        this.options.onPairs?.({
          step,
          microBatch: micro,
          pairs: rows.map((p, i) => ({
            prompt: p.text,
            chosen: texts[chosen[i]],
            rejected: texts[rejected[i]],
            promptIds: r.promptTokenIds[i],
            chosenIds: ids[chosen[i]],
            rejectedIds: ids[rejected[i]],
            ...(scores ? { chosenScore: scores[chosen[i]], rejectedScore: scores[rejected[i]] } : {}),
            firstChosen: firstChosen[i],
          })),
        });
        const feeds: Record<string, HostTensor> = {
          ...scoredFeeds(pairs),
          ref_logps: { data: Float32Array.from(reference), dims: [2 * B] },
          beta: { data: Float32Array.of(beta), dims: [1] },
        };
        return {
          feeds,
          tokens: preferenceTokens(pairs),
          reference,
          scores: scores ? Float64Array.from(order, (n) => scores[n]) : undefined,
          containsEos: order.map((n) => eosFlags[n]),
          beta,
        };
      };

      const batcher = new PreferenceBatcher(promptRows, { batchSize: c.batchSize, padTokenId, seed: c.seed });
      const stepsPerEpoch = Math.max(1, Math.ceil(batcher.batchesPerEpoch / c.gradientAccumulationSteps));
      const dropout = trainingDropout(c);
      const acc = new MetricsAccumulator();
      let evalScorer: Scorer | undefined;
      try {
        return await runTrainer<PreferenceBatch>({
          config: c,
          progress: this.progress,
          params: policy,
          loss: (g, weights) => buildOnlineDpoLoss(g, policy.model, weights, c.lossType, dropout),
          source: { batcher, tokens: (batch) => ranked.get(batch)?.tokens ?? 0 },
          digest,
          label: 'online',
          evalOnStart: c.evalOnStart,
          stopRequested: () => this.stop.stopped,
          hooks: (tools) => ({
            feeds: async (batches, step) => {
              const beta = betaForEpoch(c.beta, step / stepsPerEpoch);
              await tools.step.sync();
              const params = tools.step.parameters();
              const out: Record<string, HostTensor>[] = [];
              for (const [m, batch] of batches.entries()) {
                const rb = await rankBatch(batch, params, step, m, beta);
                ranked.set(batch, rb);
                out.push(rb.feeds);
              }
              return out;
            },
            record: (batch, o) => {
              const rb = ranked.get(batch) as RankedBatch;
              const stats = onlineStepMetrics({ policy: o.policy_logps.data as Float32Array, reference: rb.reference, scores: rb.scores, containsEos: rb.containsEos, beta: rb.beta });
              for (const [k, v] of Object.entries(stats)) acc.add(k, v);
            },
            flush: () => acc.flush(),
            evaluate: evalPrompts
              ? async (params) => {
                  evalScorer ??= await Scorer.create(policy.model, policy.specs, this.runtime, policy.transform);
                  return this.evaluate(evalPrompts, params, sample, evalScorer, policy, refLogps, ranker, padTokenId);
                }
              : undefined,
            saveFinal: async (params) => {
              await savePolicy(c.output, c.model, pretrained, policy, params, c);
              log(`saved the model to ${c.output}`);
            },
            progressInfo: (m, lastLoss) => ({ loss: m.loss ?? lastLoss, kl: m['objective/kl'] ?? 0, ...(m['objective/scores'] !== undefined ? { score: m['objective/scores'] } : {}) }),
          }),
        });
      } finally {
        await evalScorer?.release();
      }
    } finally {
      for (const r of resources.reverse()) await r.release();
    }
  }

  /**
   * The frozen reference: refModel, or the starting weights (a copy: the policy's are trained in
   * place), or with LoRA the base weights themselves (never trained).
   */
  private async reference(pretrained: Pretrained, policy: Policy): Promise<{ model: Pretrained; weights: ReadonlyMap<string, Float32Array>; shapes: Map<string, readonly number[]> }> {
    const c = this.config;
    const ref = c.refModel ? await loadPretrained(c.refModel, { tokenizer: false }) : pretrained;
    if (ref.model.config.vocabSize !== policy.model.config.vocabSize) {
      throw new DpoError(`refModel ${c.refModel}: vocabulary of ${ref.model.config.vocabSize} tokens, the policy's has ${policy.model.config.vocabSize}: they must share a tokenizer`);
    }
    const weights = c.refModel || policy.lora ? ref.weights : new Map([...ref.weights].map(([k, v]) => [k, Float32Array.from(v)]));
    return { model: ref, weights, shapes: new Map(ref.model.parameters().map((p) => [p.name, p.shape] as const)) };
  }

  /**
   * eval_objective/kl (mean summed log pi - log pi_ref of one sample per held-out prompt, the
   * same seed every time) and, with a reward, eval_objective/scores (raw rewards, no penalty).
   */
  private async evaluate(
    prompts: readonly PromptRow[],
    params: ReadonlyMap<string, Float32Array>,
    sample: (params: ReadonlyMap<string, Float32Array>, texts: readonly string[], n: number, seed: number) => Promise<TextGenerationResult>,
    scorer: Scorer,
    policy: Policy,
    refLogps: (batch: PreferenceBatch) => Promise<Float64Array>,
    ranker: PairRanker,
    padTokenId: number,
  ): Promise<Record<string, number>> {
    const c = this.config;
    const r = await sample(params, prompts.map((p) => p.text), 1, deriveSeed(c.seed, STREAMS.eval));
    let kl = 0;
    for (let s = 0; s < prompts.length; s += c.batchSize) {
      const rows: TokenizedPreference[] = [];
      for (let i = s; i < Math.min(s + c.batchSize, prompts.length); i++) rows.push({ promptIds: r.promptTokenIds[i], completionIds: [r.tokenIds[i][0]], origin: prompts[i].origin });
      const batch = collatePreferences(rows, { padTokenId });
      const pol = (await scorer.score(batch, params, policy.shapes)).logps;
      const ref = await refLogps(batch);
      for (let n = 0; n < pol.length; n++) kl += pol[n] - ref[n];
    }
    const out: Record<string, number> = {};
    if (ranker.reward) {
      const scores = await ranker.reward(prompts.map((p) => p.text), r.completions.map((s) => s[0]), 'eval');
      out['eval_objective/scores'] = scores.reduce((a, b) => a + b, 0) / scores.length;
    }
    out['eval_objective/kl'] = kl / prompts.length;
    return out;
  }
}

/** What defines an online DPO run's trajectory (the step budget and reporting may change on resume). */
const ONLINE_RESUME_KEYS = [
  'model', 'prompts', 'rewardModel', 'scorer', 'judgeUrl', 'judgeModel', 'judgeTemplate', 'refModel', 'lossType', 'beta', 'missingEosPenalty',
  'maxNewTokens', 'temperature', 'topK', 'topP', 'maxLength', 'batchSize', 'gradientAccumulationSteps', 'optimizer', 'seed', 'lora', 'threads',
] as const satisfies readonly (keyof OnlineDPOConfig)[];
