/**
 * What ranks online DPO's two samples per prompt: a reward (a reward model folder or a scorer,
 * with TRL's missing-EOS penalty; the higher wins, a tie goes to the first sample) or the
 * OpenAI-compatible LLM judge of `dpo evaluate`, asked in both orders (a tie or a malformed
 * verdict goes to the first sample too).
 */
import { join } from 'node:path';
import type { RuntimeOptions } from '../../engine/runtime.js';
import { DpoError } from '../../errors.js';
import { JudgeClient, judgePairs, VerdictCache } from '../../eval/judge.js';
import { openRewardSource, type RewardSource } from '../../eval/rewards.js';
import { promptQueryText, type PromptRow } from '../../generate/prompts.js';
import type { OnlineDPOConfig } from './config.js';
import { firstChosenByJudge, firstChosenByScores, penalizedScores } from './pairs.js';

export interface Ranking {
  /** Per prompt: whether its first sample is chosen. */
  firstChosen: boolean[];
  /** [2B] rewards after the missing-EOS penalty (first samples, then second); undefined for a judge. */
  scores?: Float64Array;
}

export interface PairRanker {
  /** 'reward_model:<path>', 'scorer:<name>' or 'llm:<model>'. */
  source: string;
  rank(prompts: readonly PromptRow[], first: readonly string[], second: readonly string[], containsEos: readonly boolean[]): Promise<Ranking>;
  /** Rewards of single samples (evaluation); undefined for a judge. */
  reward?: RewardSource['fn'];
  release(): Promise<void>;
}

export interface RankerOptions {
  runtime: RuntimeOptions;
  log(message: string): void;
  /** Replaceable for tests (default: global fetch). */
  fetch?: typeof fetch;
}

type RankerConfig = Pick<
  OnlineDPOConfig,
  'rewardModel' | 'scorer' | 'judgeUrl' | 'judgeModel' | 'judgeApiKeyEnv' | 'judgeTemplate' | 'judgeConcurrency' | 'judgeMaxAttempts' | 'judgeTimeout' | 'missingEosPenalty' | 'batchSize' | 'output'
>;

export async function openRanker(c: RankerConfig, o: RankerOptions): Promise<PairRanker> {
  if (c.judgeUrl) return judgeRanker(c, o);
  const reward = await openRewardSource({ rewardModel: c.rewardModel, scorer: c.scorer, batchSize: 2 * c.batchSize, runtime: o.runtime });
  return {
    source: reward.source,
    reward: reward.fn,
    async rank(prompts, first, second, containsEos) {
      const texts = prompts.map((p) => p.text);
      const raw = await reward.fn([...texts, ...texts], [...first, ...second], 'samples');
      const scores = penalizedScores(raw, containsEos, c.missingEosPenalty);
      return { firstChosen: firstChosenByScores(scores), scores };
    },
    release: () => reward.release(),
  };
}

async function judgeRanker(c: RankerConfig, o: RankerOptions): Promise<PairRanker> {
  const apiKey = process.env[c.judgeApiKeyEnv];
  if (!apiKey && c.judgeApiKeyEnv !== 'OPENAI_API_KEY') throw new DpoError(`judgeApiKeyEnv: environment variable ${c.judgeApiKeyEnv} is not set`);
  const client = new JudgeClient({
    url: c.judgeUrl as string,
    model: c.judgeModel as string,
    apiKey: apiKey || undefined,
    maxAttempts: c.judgeMaxAttempts,
    timeoutMs: c.judgeTimeout * 1000,
    fetch: o.fetch,
    onRetry: ({ attempt, delayMs, reason }) => o.log(`judge: ${reason}; retry ${attempt} in ${(delayMs / 1000).toFixed(1)}s`),
  });
  // In the output folder: a resumed run asks nothing it already asked.
  const cache = await VerdictCache.open(join(c.output, 'judge-verdicts.jsonl'));
  return {
    source: `llm:${client.model}`,
    async rank(prompts, first, second) {
      const pairs = prompts.map((p, i) => ({ query: promptQueryText(p), policy: first[i], baseline: second[i] }));
      const judged = await judgePairs(pairs, { client, cache, template: c.judgeTemplate, concurrency: c.judgeConcurrency });
      return { firstChosen: firstChosenByJudge(judged.outcomes) };
    },
    release: async () => {},
  };
}
