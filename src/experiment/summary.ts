/** What the sentiment experiment resolved, ran and produced: the types its runner and its report share. */
import type { FrontierPoint } from './frontier.js';

export interface ExperimentSettings {
  model: string;
  scorer: string;
  quick: boolean;
  trainPrompts: number;
  heldOutPrompts: number;
  samplesPerPrompt: number;
  pairTopK: number;
  evalSamplesPerPrompt: number;
  maxNewTokens: number;
  steps: number;
  checkpoints: number;
  batchSize: number;
  learningRate: number;
  rewardModelSteps: number;
  rewardLearningRate: number;
  betas: number[];
  targetKls: number[];
  bestOfN: number[];
  unlikelihoodAlpha: number;
  seed: number;
}

export interface RunRecord {
  method: string;
  setting: string;
  seconds: number;
  /** Why the run failed (its points are then missing); absent when it finished. */
  error?: string;
}

export interface SentimentExperimentSummary {
  output: string;
  report: string;
  frontierFile: string;
  pairs: number;
  rewardModel: { dir: string; heldOutAccuracy: number; heldOutPairs: number };
  points: FrontierPoint[];
  runs: RunRecord[];
  settings: ExperimentSettings;
  seconds: number;
}
