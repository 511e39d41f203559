/**
 * The command line and the applications behind its commands (`dpo-ts/cli`): `main(['train', ...])`
 * embeds the `dpo` command; the quickstart, the sentiment experiment and the labelling page are
 * runnable from code too.
 */
export { main, createProgram } from './main.js';
export type { CliContext, CliIO, CliStream, RegisterCommand } from './context.js';
export { runQuickstart, preferencePairs, SHIPPED_MODEL, type QuickstartOptions, type QuickstartSummary } from '../quickstart/run.js';
export { renderSvg } from '../quickstart/report.js';
export {
  runSentimentExperiment,
  experimentRuns,
  METHODS as EXPERIMENT_METHODS,
  type SentimentExperimentOptions,
  type SentimentExperimentSummary,
  type ExperimentSettings,
  type RunRecord,
} from '../experiment/sentiment.js';
export { FrontierEvaluator, type FrontierPoint, type PolicyEvaluation } from '../experiment/frontier.js';
export { trainedRunPoints, type ExperimentRun, type MethodContext } from '../experiment/methods.js';
export { SHIFT_TRAIN_PROMPTS, SHIFT_IN_DISTRIBUTION_PROMPTS, SHIFT_SHIFTED_PROMPTS, SHIFT_GENRES } from '../data/shift-prompts.js';
export type { ShiftTable, ShiftRow, ShiftCell, ShiftWinRate, ShiftResult, DistributionResult } from '../experiment/shift.js';
export { runLabel, LabelSession, LabelStore, startLabelServer, type LabelOptions, type RunningLabel, type Decision, type LabelState } from '../label/index.js';
