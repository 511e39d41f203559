/** What the sentiment experiment resolved, ran and produced: the types its runner, results and report share. */
import type { HostInfo } from '../engine/host.js';
import type { FrontierPoint } from './frontier.js';
import type { RunWinRates, TracePoint } from './methods.js';
import type { PooledPoint } from './pooling.js';
import type { ShiftTable } from './shift.js';

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
  /** Seeds run: seed, seed + 1, ... */
  seeds: number;
  /** Temperatures of the win rate against the reference ([] for none). */
  winTemperatures: number[];
  /** The LLM judge's endpoint and model, when one judges the win rates too. */
  judge?: { url: string; model: string };
  /** The distribution-shift study (--shift): its shifted held-out prompts, and whether all prompts are the built-in Brown-corpus sets. */
  shift?: { shiftedPrompts: number; builtInPrompts: boolean };
}

/** A run's win rate at one temperature, pooled over seeds (95% interval as the frontier's). */
export interface PooledWinRate {
  method: string;
  setting: string;
  temperature: number;
  seeds: number;
  winRate: number;
  winRateCi: [number, number];
  /** By the LLM judge, mean over seeds, when it judged. */
  judgeWinRate?: number;
}

/** One seed's data: its pairs and its reward model's held-out accuracy. */
export interface SeedInfo {
  seed: number;
  pairs: number;
  heldOutPairs: number;
  rewardModelAccuracy: number;
}

export interface RunRecord {
  method: string;
  setting: string;
  seed: number;
  seconds: number;
  /** Why the run failed (its points are then missing); absent when it finished. */
  error?: string;
  /** PPO: its rollouts' KL, score and coefficient per update. */
  trace?: TracePoint[];
}

export interface SentimentExperimentSummary {
  output: string;
  report: string;
  frontierFile: string;
  /** The first seed's pairs and reward model (every seed's: `seeds`). */
  pairs: number;
  rewardModel: { dir: string; heldOutAccuracy: number; heldOutPairs: number };
  seeds: SeedInfo[];
  /** Every seed's points, as frontier.jsonl. */
  points: FrontierPoint[];
  /** The points pooled over seeds, with 95% intervals over seeds and samples (pooling.ts). */
  pooled: PooledPoint[];
  runs: RunRecord[];
  /** Every trained run's final policy against the reference's completions, per seed and temperature. */
  winRates: (RunWinRates & { method: string; setting: string; seed: number })[];
  /** The same pooled over seeds. */
  pooledWinRates: PooledWinRate[];
  /** Units of the sweep with no result yet ('seed 1: DPO beta=0.1'). */
  missing: string[];
  settings: ExperimentSettings;
  /** Threads and the CPU of the machine that built this summary (the runs' thread count is the plan's). */
  host: HostInfo;
  /** The distribution-shift study's table (--shift), method x distribution (shift.ts). */
  shift?: ShiftTable;
  /** What the frontier shows, computed from the pooled points (reading.ts). */
  reading: string[];
  seconds: number;
}
