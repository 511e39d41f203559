/** PPO (RLHF's last stage, the DPO paper's baseline): the trainer and its pure pieces. */
export { PPOTrainer, savePolicyWithValueHead, type PPOTrainerOptions, type PPOTrainResult } from './trainer.js';
export { PPOConfigSchema, parsePpoConfig, type PPOConfig, type PPOConfigInput } from './config.js';
export { generalizedAdvantages, penalizedRewards, whiten, meanVar, type PenalizedRewards } from './advantages.js';
export { clippedPolicyLoss, clippedValueLoss, type PolicyLossTerms, type ValueLossTerms } from './losses.js';
export { KlController, type KlControllerState } from './kl-controller.js';
export { VALUE_HEAD_WEIGHT, VALUE_HEAD_BIAS, initValueHead, readValueHead, valueHeadShapes } from './value-head.js';
export { buildPpoLoss, tokenScores, TokenScorer, type PpoLossOptions } from './graphs.js';
