/**
 * A pairwise judge for studies: given (prompt, x, y), which completion is better. Either an LLM
 * behind an OpenAI-compatible endpoint ({@link judgePairs}: the DPO paper's templates, both
 * orders, retries and the verdict cache) or, offline, a scorer (the higher score wins, equal =
 * tie, no position to be biased by). Used by the judge-agreement study and by win rates against a
 * baseline ({@link judgeWinRate}).
 *
 * An LLM verdict keeps apart what a win rate would lump together:
 * - `x` / `y`: the same completion chosen in both orders;
 * - `inconsistent`: the same position chosen in both orders (position bias);
 * - `tie`: a tie declared ("More helpful: Tie", "neither"...; see {@link parseJudgeTie}) in an order;
 * - `invalid`: an answer naming no choice in either order (counted, never guessed, as TRL's judges do).
 */
import { JudgeClient, judgePairs, parseJudgeTie, VerdictCache, type JudgeClientOptions, type JudgeTemplateName, type WinRateCounts } from './judge.js';
import { wilsonInterval } from './intervals.js';
import type { CompletionScorer } from './scorers.js';

/** The judge's verdict on one comparison, relative to its first completion `x`. */
export type JudgeVerdict = 'x' | 'y' | 'tie' | 'inconsistent' | 'invalid';

/** One comparison: which of `x` and `y` better answers `prompt`. */
export interface PairItem {
  prompt: string;
  x: string;
  y: string;
}

/** What an LLM judge run did: questions asked, answered from the cache, HTTP requests, position bias. */
export interface LlmJudgeStats {
  asked: number;
  cached: number;
  requests: number;
  /** Share of valid answers that chose position A (0.5 = no position bias). */
  first_position_rate: number | null;
}

/** Judges comparisons; returns one verdict each, in order. */
export interface PairJudge {
  /** What judged, for reports: {kind: 'llm', url, model, template, cache} or {kind: 'scorer', scorer}. */
  describe: Record<string, string | number | null>;
  judge(items: readonly PairItem[]): Promise<JudgeVerdict[]>;
  /** LLM judges: what the last run asked. */
  stats?: LlmJudgeStats;
}

export interface LlmPairJudgeOptions extends JudgeClientOptions {
  template?: JudgeTemplateName;
  /** The verdict cache file (`VerdictCache.fileIn(cacheDir)`); omit to ask every time. */
  cacheFile?: string;
  concurrency?: number;
  onProgress?: (done: number, total: number) => void;
}

/** The verdict from the two orders' parsed choices and raw answers (x shown first, then second). */
export function verdictOfOrders(first: 'A' | 'B' | undefined, second: 'A' | 'B' | undefined, answers: readonly [string | undefined, string | undefined]): JudgeVerdict {
  const tie = answers.map((a) => (a === undefined ? false : parseJudgeTie(a)));
  const valid = [first !== undefined || tie[0], second !== undefined || tie[1]];
  if (!valid[0] || !valid[1]) return 'invalid';
  if (tie[0] || tie[1]) return 'tie';
  if (first === 'A' && second === 'B') return 'x';
  if (first === 'B' && second === 'A') return 'y';
  return 'inconsistent';
}

/** An LLM judge over an OpenAI-compatible endpoint, asked in both orders, with the verdict cache. */
export function llmPairJudge(options: LlmPairJudgeOptions): PairJudge & { stats: LlmJudgeStats } {
  const client = new JudgeClient(options);
  const template = options.template ?? 'dialogue';
  const stats: LlmJudgeStats = { asked: 0, cached: 0, requests: 0, first_position_rate: null };
  return {
    describe: { kind: 'llm', url: client.url, model: client.model, template, cache: options.cacheFile ?? null },
    stats,
    async judge(items) {
      const cache = options.cacheFile ? await VerdictCache.open(options.cacheFile) : undefined;
      const pairs = items.map((it) => ({ query: it.prompt, policy: it.x, baseline: it.y }));
      const r = await judgePairs(pairs, { client, cache, template, concurrency: options.concurrency, onProgress: options.onProgress });
      Object.assign(stats, { asked: r.asked, cached: r.cached, requests: client.requests, first_position_rate: r.first_position_rate });
      // judgePairs asks nothing about identical completions: a tie.
      return items.map((it, i) => (it.x.trim() === it.y.trim() ? 'tie' : verdictOfOrders(r.choices[i][0], r.choices[i][1], r.answers[i])));
    },
  };
}

/** A scorer as the judge (offline): the completion with the higher score wins, equal = tie, a non-finite score is invalid. */
export function scorerPairJudge(name: string, score: CompletionScorer): PairJudge {
  return {
    describe: { kind: 'scorer', scorer: name },
    async judge(items) {
      const out: JudgeVerdict[] = [];
      for (const it of items) {
        const [sx, sy] = [await score(it.prompt, it.x), await score(it.prompt, it.y)];
        out.push(!Number.isFinite(sx) || !Number.isFinite(sy) ? 'invalid' : sx > sy ? 'x' : sy > sx ? 'y' : 'tie');
      }
      return out;
    },
  };
}

/** Win rate counts (as `dpo evaluate` reports them) with position-inconsistent verdicts apart and an interval. */
export interface WinRateWithInterval extends WinRateCounts {
  /** Comparisons where the judge picked the same position in both orders (counted as ties). */
  inconsistent: number;
  /**
   * 95% Wilson interval of win_rate, with ties as half a win (wins + ties/2 successes out of
   * wins + ties + losses; an approximation, since a tie is not a Bernoulli outcome). Null
   * without a judged comparison.
   */
  interval: [number, number] | null;
}

/**
 * The win rate of `x` over `y` across `items`: wins, ties (declared ties and position-inconsistent
 * verdicts, as `dpo evaluate` counts them), losses and malformed (invalid) verdicts, with
 * win_rate = (wins + ties/2) / (wins + ties + losses) and its interval.
 */
export async function judgeWinRate(items: readonly PairItem[], judge: PairJudge): Promise<WinRateWithInterval> {
  return winRateOf(await judge.judge(items));
}

/** {@link judgeWinRate} from verdicts already made. */
export function winRateOf(verdicts: readonly JudgeVerdict[]): WinRateWithInterval {
  const c = { wins: 0, ties: 0, losses: 0, malformed: 0, inconsistent: 0 };
  for (const v of verdicts) {
    if (v === 'x') c.wins++;
    else if (v === 'y') c.losses++;
    else if (v === 'invalid') c.malformed++;
    else {
      c.ties++;
      if (v === 'inconsistent') c.inconsistent++;
    }
  }
  const judged = c.wins + c.ties + c.losses;
  const successes = c.wins + c.ties / 2;
  return { comparisons: verdicts.length, ...c, win_rate: judged > 0 ? successes / judged : null, interval: wilsonInterval(successes, judged) };
}
