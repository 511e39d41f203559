/**
 * Scoring: what a causal LM (or a reward model) says about given completions, below both
 * training and evaluation: per-sequence log-probs (sequence-logps.ts), a compiled scorer
 * (scorer.ts), the cached reference log-probs (reference-cache.ts) and the reward model
 * (reward-model.ts).
 */
export * from './sequence-logps.js';
export * from './scorer.js';
export * from './reference-cache.js';
export * from './reward-model.js';
