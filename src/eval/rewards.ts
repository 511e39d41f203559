/**
 * The reward of (prompt, completion) texts: a reward model folder (normalised: raw reward minus
 * its reward_offset, tokenized with the reward model's own tokenizer as `dpo reward score` does)
 * or a scorer (a registered name such as 'sentiment', or a function). Shared by evaluation and by
 * the trainers that reward their own samples (PPO).
 */
import { collatePreferences } from '../data/collate.js';
import { tokenizePreferences, type TokenizedPreference } from '../data/tokenize.js';
import type { RuntimeOptions } from '../engine/runtime.js';
import { DpoError } from '../errors.js';
import { silentProgress, type ProgressReporter } from '../train/progress.js';
import { loadRewardModel, rewardParameterShapes, RewardScorer } from '../train/reward-model.js';
import { getScorer, type CompletionScorer } from './scorers.js';

/** Rewards of completions[i] given prompts[i]; `label` names the set in progress and errors. */
export type RewardFn = (prompts: readonly string[], completions: readonly string[], label: string) => Promise<Float64Array>;

export interface TextReward {
  fn: RewardFn;
  /** 'reward_model:<path>' or 'scorer:<name>'. */
  source: string;
  release(): Promise<void>;
}

export interface TextRewardOptions {
  /** A reward model (sequence-classification layout). */
  rewardModel?: string;
  /** A registered scorer name ('sentiment', 'length', ...) or a function, instead of a reward model. */
  scorer?: string | CompletionScorer;
  /** Names a function `scorer` in `source` (default 'custom'). */
  scorerName?: string;
  /** Sequences per reward-model batch (default 8). */
  batchSize?: number;
  runtime?: RuntimeOptions;
  progress?: ProgressReporter;
}

/** The reward a reward model or a scorer gives; undefined when neither is given. */
export async function textReward(o: TextRewardOptions): Promise<TextReward | undefined> {
  if (o.rewardModel && o.scorer) throw new DpoError('give a reward model or a scorer, not both');
  if (o.rewardModel) return { ...(await rewardModelFn(o.rewardModel, o.batchSize ?? 8, o.runtime, o.progress ?? silentProgress)), source: `reward_model:${o.rewardModel}` };
  if (o.scorer) {
    const entry = typeof o.scorer === 'string' ? getScorer(o.scorer) : undefined;
    return {
      fn: scorerFn(entry ? entry.score : (o.scorer as CompletionScorer)),
      source: `scorer:${entry ? entry.name : (o.scorerName ?? 'custom')}`,
      release: async () => {},
    };
  }
  return undefined;
}

async function rewardModelFn(ref: string, bs: number, runtime: RuntimeOptions | undefined, progress: ProgressReporter): Promise<{ fn: RewardFn; release(): Promise<void> }> {
  const rm = await loadRewardModel(ref);
  if (!rm.tokenizer) throw new DpoError(`${rm.dir}: no tokenizer.json; the reward model's tokenizer is needed to read the samples`);
  const tokenizer = rm.tokenizer;
  const scorer = await RewardScorer.create(rm.model, rewardParameterShapes(rm.model), runtime);
  const fn: RewardFn = async (prompts, completions, label) => {
    const rows: TokenizedPreference[] = prompts.map((prompt, i) => {
      const t = tokenizePreferences([{ prompt, completions: [completions[i]], origin: { file: label, line: i } }], tokenizer, { maxLength: rm.model.config.maxPositions });
      if (t.rows.length === 0) throw new DpoError(`${label} ${i}: the prompt alone fills the reward model's ${rm.model.config.maxPositions} positions`);
      return t.rows[0];
    });
    const out = new Float64Array(rows.length);
    progress.start(`reward ${label}`, rows.length);
    for (let s = 0; s < rows.length; s += bs) {
      const raw = await scorer.score(collatePreferences(rows.slice(s, s + bs), { padTokenId: rm.padTokenId }), rm.weights, rm.padTokenId);
      for (let i = 0; i < raw.length; i++) out[s + i] = raw[i] - rm.offset;
      progress.update(Math.min(s + bs, rows.length));
    }
    progress.stop();
    return out;
  };
  return { fn, release: () => scorer.release() };
}

function scorerFn(scorer: CompletionScorer): RewardFn {
  return async (prompts, completions) => {
    const out = new Float64Array(prompts.length);
    for (let i = 0; i < prompts.length; i++) {
      const v = await scorer(prompts[i], completions[i]);
      if (typeof v !== 'number' || Number.isNaN(v)) throw new DpoError(`scorer returned ${String(v)} for sample ${i}; a scorer must return a number`);
      out[i] = v;
    }
    return out;
  };
}
