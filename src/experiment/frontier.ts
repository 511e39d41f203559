/**
 * One point of the reward-KL frontier per policy: fresh samples on held-out prompts, their mean
 * ground-truth reward, and KL(pi || pi_ref) estimated as the mean of log pi(y|x) - log pi_ref(y|x)
 * over those samples. Samples are pure ancestral draws (temperature 1, no top-k/top-p), so the
 * KL estimate is unbiased, and every policy is sampled with the same seed (common random
 * numbers: differences between points are less noisy than the points).
 */
import { deriveSeed } from '../data/rng.js';
import type { RuntimeOptions } from '../engine/runtime.js';
import { judgePairs, type JudgeClient, type VerdictCache } from '../eval/judge.js';
import { bestOfN, bestOfNKl, type BestOfNResult } from '../eval/best-of-n.js';
import { completionLogps, estimateKl, sampleStats } from '../eval/kl.js';
import type { RewardFn } from '../eval/rewards.js';
import { Generator } from '../generate/generator.js';
import { resolveEosTokenIds, type TextGenerationResult } from '../generate/text.js';
import type { TextTokenizer } from '../io/tokenizer-types.js';
import type { Pretrained } from '../models/pretrained.js';
import type { ProgressReporter } from '../progress.js';

/** One evaluated policy (or Best-of-N setting) on the frontier. */
export interface FrontierPoint {
  /** 'reference', 'DPO', 'PPO', 'PPO-GT', 'Unlikelihood', 'Preferred-FT', 'Best-of-N'. */
  method: string;
  /** The run's setting, e.g. 'beta=0.1', 'target_kl=6', 'N=4' ('' for a method with one run). */
  setting: string;
  /** Training step of the checkpoint (N for Best-of-N, 0 for the reference). */
  step: number;
  /** The experiment seed of the run (its pairs, reward model, training and evaluation samples). */
  seed: number;
  /** Mean ground-truth reward of the held-out samples, and its standard error. */
  reward: number;
  rewardStderr: number;
  /** KL(pi || pi_ref) in nats per sequence, and its standard error (0 where it is exact). */
  kl: number;
  klStderr: number;
  samples: number;
}

export interface PolicyEvaluation {
  reward: number;
  rewardStderr: number;
  kl: number;
  klStderr: number;
  samples: number;
  /** First sample of each held-out prompt, with its reward. */
  examples: { prompt: string; completion: string; reward: number }[];
}

export interface FrontierEvaluatorOptions {
  reference: Pretrained;
  tokenizer: TextTokenizer;
  prompts: readonly string[];
  samplesPerPrompt: number;
  maxNewTokens: number;
  /** The ground-truth reward. */
  reward: RewardFn;
  seed: number;
  runtime?: RuntimeOptions;
  progress: ProgressReporter;
  /** Asked in every decoding step and before every judge question: true stops (GenerationStopped / JudgeStopped). */
  stopRequested?: () => boolean;
}

/** Win rate against the reference's completions at one sampling temperature. */
export interface WinRate {
  temperature: number;
  /** By the ground-truth reward: share of prompts+samples where the policy's completion scores higher (ties half), and its standard error. */
  winRate: number;
  winRateStderr: number;
  pairs: number;
  /** By the LLM judge (both orders; ties half, malformed verdicts left out), when one was given. */
  judgeWinRate?: number;
  judgePairs?: number;
}

/** The LLM judge of the win rates (--judge-url). */
export interface JudgeSetup {
  client: JudgeClient;
  cache?: VerdictCache;
}

export class FrontierEvaluator {
  /** The reference's completions per temperature, for every win rate. */
  private readonly referenceAt = new Map<number, TextGenerationResult>();

  private constructor(
    private readonly o: FrontierEvaluatorOptions,
    private readonly generator: Generator,
  ) {}

  static async create(o: FrontierEvaluatorOptions): Promise<FrontierEvaluator> {
    return new FrontierEvaluator(o, await Generator.create(o.reference.model, { runtime: o.runtime }));
  }

  /** The sampling settings every point shares. */
  private sampling(samplesPerPrompt: number) {
    const o = this.o;
    return {
      maxNewTokens: o.maxNewTokens,
      doSample: true,
      temperature: 1,
      topK: 0,
      topP: 1,
      numSamples: samplesPerPrompt,
      seed: o.seed,
      eosTokenIds: resolveEosTokenIds(o.reference.model, o.tokenizer, o.reference.generationConfig),
      batchSize: 32,
      onProgress: (done: number) => o.progress.update(done),
      stopRequested: o.stopRequested,
    };
  }

  /**
   * `k` samples of each of `prompts` (default: the held-out prompts and samples per prompt), pure
   * unless `topK` truncates them (preference pairs may be sampled so; frontier points never are).
   */
  async sample(weights: ReadonlyMap<string, Float32Array>, label: string, prompts = this.o.prompts, k = this.o.samplesPerPrompt, seed = this.o.seed, topK = 0): Promise<TextGenerationResult> {
    const o = this.o;
    o.progress.start(label, prompts.length * k);
    try {
      return await this.generator.generateText(weights, o.tokenizer, prompts, { ...this.sampling(k), seed, topK });
    } finally {
      o.progress.stop();
    }
  }

  /**
   * Best-of-N from the reference, ranked by `rankBy` (the learned reward), scored by the ground
   * truth. Its KL is the closed form log N - (N - 1)/N (exact up to ties), not an estimate.
   */
  async evaluateBestOfN(n: number, rankBy: RewardFn, label: string): Promise<PolicyEvaluation> {
    const o = this.o;
    o.progress.start(label, o.prompts.length * o.samplesPerPrompt * n);
    let r: BestOfNResult;
    try {
      r = await bestOfN(this.generator, o.reference.weights, o.tokenizer, o.prompts, { ...this.sampling(o.samplesPerPrompt), n, reward: rankBy });
    } finally {
      o.progress.stop();
    }
    const rewards = await o.reward(o.prompts.flatMap((p, i) => r.completions[i].map(() => p)), r.completions.flat(), label);
    const rs = sampleStats(rewards);
    return {
      reward: rs.mean,
      rewardStderr: rs.stderr,
      kl: bestOfNKl(n),
      klStderr: 0,
      samples: rewards.length,
      examples: o.prompts.map((prompt, i) => ({ prompt, completion: r.completions[i][0], reward: rewards[i * o.samplesPerPrompt] })),
    };
  }

  /** Reward and KL(pi || pi_ref) of the policy with these weights (same architecture as the reference). */
  async evaluate(weights: ReadonlyMap<string, Float32Array>, label: string): Promise<PolicyEvaluation> {
    const o = this.o;
    const r = await this.sample(weights, label);
    const prompts = o.prompts.flatMap((p, i) => r.completions[i].map(() => p));
    const rewards = await o.reward(prompts, r.completions.flat(), label);
    const sequences = o.prompts.flatMap((_, i) => r.tokenIds[i].map((ids) => ({ promptIds: r.promptTokenIds[i], completionIds: ids })));
    const logps = (w: ReadonlyMap<string, Float32Array>): Promise<Float64Array> =>
      completionLogps(o.reference.model, w, sequences, { batchSize: 32, padTokenId: o.tokenizer.padTokenId, runtime: o.runtime });
    const policy = await logps(weights);
    const ref = weights === o.reference.weights ? policy : await logps(o.reference.weights);
    const kl = estimateKl(policy, ref);
    const rs = sampleStats(rewards);
    return {
      reward: rs.mean,
      rewardStderr: rs.stderr,
      kl: kl.mean,
      klStderr: kl.stderr,
      samples: rewards.length,
      examples: o.prompts.map((prompt, i) => ({ prompt, completion: r.completions[i][0], reward: rewards[i * o.samplesPerPrompt] })),
    };
  }

  /**
   * The paper's second measure (its Figure 3): how often the policy's completion beats the
   * reference's on the same held-out prompt, both sampled at each temperature (pure otherwise),
   * judged by the ground-truth reward (a tie counts half) and, when a judge is given, by the LLM
   * judge asked in both orders (eval/judge.ts). The reference's completions are sampled once per
   * temperature and kept.
   */
  async winRates(weights: ReadonlyMap<string, Float32Array>, temperatures: readonly number[], label: string, judge?: JudgeSetup): Promise<WinRate[]> {
    const o = this.o;
    const out: WinRate[] = [];
    for (const temperature of temperatures) {
      const seed = deriveSeed(o.seed, 7, Math.round(temperature * 1000));
      const ref = this.referenceAt.get(temperature) ?? (await this.sampleAt(o.reference.weights, temperature, seed, `reference at T=${temperature}`));
      this.referenceAt.set(temperature, ref);
      const pol = await this.sampleAt(weights, temperature, seed, `${label} at T=${temperature}`);
      const prompts = o.prompts.flatMap((p, i) => pol.completions[i].map(() => p));
      const [pr, rr] = [await o.reward(prompts, pol.completions.flat(), label), await o.reward(prompts, ref.completions.flat(), label)];
      const wins = pr.map((r, i) => (r > rr[i] ? 1 : r === rr[i] ? 0.5 : 0));
      const st = sampleStats(wins);
      const w: WinRate = { temperature, winRate: st.mean, winRateStderr: st.stderr, pairs: wins.length };
      if (judge) {
        const flatRef = ref.completions.flat();
        const r = await judgePairs(
          pol.completions.flat().map((c, i) => ({ query: prompts[i], policy: c, baseline: flatRef[i] })),
          { client: judge.client, cache: judge.cache, stopRequested: this.o.stopRequested },
        );
        w.judgeWinRate = r.counts.win_rate ?? NaN;
        w.judgePairs = r.counts.wins + r.counts.ties + r.counts.losses;
      }
      out.push(w);
    }
    return out;
  }

  private async sampleAt(weights: ReadonlyMap<string, Float32Array>, temperature: number, seed: number, label: string): Promise<TextGenerationResult> {
    const o = this.o;
    o.progress.start(label, o.prompts.length * o.samplesPerPrompt);
    try {
      return await this.generator.generateText(weights, o.tokenizer, o.prompts, { ...this.sampling(o.samplesPerPrompt), seed, temperature });
    } finally {
      o.progress.stop();
    }
  }

  async release(): Promise<void> {
    await this.generator.release();
  }
}
