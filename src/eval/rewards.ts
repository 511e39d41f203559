/**
 * A reward of texts from either source the project knows: a reward model folder (`dpo reward
 * train` output, normalised: raw − reward_offset) or a scorer (a registered name or a function).
 * Shared by `dpo evaluate`, Best-of-N sampling and the sentiment experiment.
 */
import { collatePreferences } from '../data/collate.js';
import { tokenizePreferences, type TokenizedPreference } from '../data/tokenize.js';
import type { RuntimeOptions } from '../engine/runtime.js';
import { DpoError } from '../errors.js';
import { silentProgress, type ProgressReporter } from '../progress.js';
import { loadRewardModel, rewardParameterShapes, RewardScorer } from '../scoring/reward-model.js';
import { getScorer, type CompletionScorer } from './scorers.js';

/** Rewards of (prompt, completion) texts, one per pair; `label` names them in messages. */
export type RewardFn = (prompts: readonly string[], completions: readonly string[], label: string) => Promise<Float64Array>;

export interface RewardSource {
  fn: RewardFn;
  /** 'reward_model:<path>' or 'scorer:<name>'. */
  source: string;
  release(): Promise<void>;
}

export interface RewardSourceOptions {
  /** A reward model folder (sequence-classification layout). */
  rewardModel?: string;
  /** A registered scorer name ('sentiment', 'length', ...) or a function, instead of a reward model. */
  scorer?: string | CompletionScorer;
  /** Names a function `scorer` (default 'custom'). */
  scorerName?: string;
  /** Sequences per reward-model forward pass (default 8). */
  batchSize?: number;
  runtime?: RuntimeOptions;
  progress?: ProgressReporter;
}

/** The reward named by `rewardModel` or `scorer` (exactly one must be given). */
export async function openRewardSource(o: RewardSourceOptions): Promise<RewardSource> {
  if (o.rewardModel && o.scorer) throw new DpoError('give a reward model or a scorer, not both');
  if (o.rewardModel) return rewardModelSource(o.rewardModel, o);
  if (o.scorer) {
    const entry = typeof o.scorer === 'string' ? getScorer(o.scorer) : undefined;
    return { fn: scorerFn(entry ? entry.score : (o.scorer as CompletionScorer)), source: `scorer:${entry ? entry.name : (o.scorerName ?? 'custom')}`, release: async () => {} };
  }
  throw new DpoError('a reward is needed: a reward model or a scorer');
}

/** Rewards under a reward model, tokenized as `dpo reward score` does. */
async function rewardModelSource(ref: string, o: RewardSourceOptions): Promise<RewardSource> {
  const rm = await loadRewardModel(ref);
  if (!rm.tokenizer) throw new DpoError(`${rm.dir}: no tokenizer.json; the reward model's tokenizer is needed to read the samples`);
  const tokenizer = rm.tokenizer;
  const scorer = await RewardScorer.create(rm.model, rewardParameterShapes(rm.model), o.runtime);
  const bs = o.batchSize ?? 8;
  const progress = o.progress ?? silentProgress;
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
  return { fn, source: `reward_model:${ref}`, release: () => scorer.release() };
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
