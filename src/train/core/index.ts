/**
 * What every trainer shares: the config machinery and shared keys, the runner (load, guard the
 * output, run the loop, save), the training loop, the policy (weights, LoRA), checkpoints,
 * metrics, the learning-rate schedule and data preparation.
 */
export * from './config.js';
export type * from './config-docs.js';
export * from './runner.js';
export * from './loop.js';
export * from './policy.js';
export * from './checkpoint.js';
export * from './output-guard.js';
export * from './metrics.js';
export * from './schedule.js';
export * from './prepare-split.js';
export * from './data-report.js';
export * from './loss-terms.js';
