/**
 * Evaluation of a policy as in the DPO paper: reward of its samples, KL(π‖π_ref), win rate
 * against a baseline judged by a reward or an LLM. {@link evaluateGenerations} does it all; the
 * pieces (scorers, KL estimate, judge client, baseline files) are usable on their own.
 */
export {
  evaluateGenerations,
  evaluatePolicy,
  formatReport,
  type EvaluateGenerationsOptions,
  type EvaluatePolicyOptions,
  type EvaluationReport,
  type JudgeOptions,
  type KlSummary,
  type RewardSummary,
  type SampleRecord,
  type WinRateSummary,
} from './evaluate.js';
export { openRewardSource, type RewardFn, type RewardSource, type RewardSourceOptions } from './rewards.js';
export { bestOfN, bestOfNKl, type BestOfNOptions, type BestOfNResult } from './best-of-n.js';
export { getScorer, listScorers, registerScorer, sentimentScore, wordCount, type CompletionScorer, type ScorerEntry } from './scorers.js';
export { completionLogps, estimateKl, sampleStats, type CompletionLogpsOptions, type KlEstimate, type SampleStats, type TokenSequence } from './kl.js';
export {
  chatCompletionsUrl,
  combineOrders,
  countOutcomes,
  JUDGE_TEMPLATES,
  JudgeClient,
  judgePairs,
  parseJudgeAnswer,
  parseJudgeTie,
  parseRetryAfter,
  renderJudgePrompt,
  VerdictCache,
  verdictKey,
  type JudgeAnswer,
  type JudgeClientOptions,
  type JudgePair,
  type JudgePairsOptions,
  type JudgePairsResult,
  type JudgeTemplateName,
  type Outcome,
  type WinRateCounts,
} from './judge.js';
export { loadBaselineFile, matchBaselines, promptKey, toBaselineRow, type BaselineFile } from './baseline.js';
export { wilsonInterval } from './intervals.js';
export {
  judgeWinRate,
  llmPairJudge,
  scorerPairJudge,
  verdictOfOrders,
  winRateOf,
  type JudgeVerdict,
  type LlmJudgeStats,
  type LlmPairJudgeOptions,
  type PairItem,
  type PairJudge,
  type WinRateWithInterval,
} from './pair-judge.js';
export {
  comparisonKey,
  formatAgreementReport,
  humanHumanAgreement,
  humanLabels,
  judgeAgreement,
  loadHumanLabels,
  type AgreementRate,
  type AgreementReport,
  type HumanHumanAgreement,
  type HumanJudgment,
  type HumanLabels,
  type JudgeHumanAgreement,
} from './judge-agreement.js';
