/** Online DPO: the trainer and its pure pieces (ranking, metrics, loss). */
export { OnlineDPOTrainer, type OnlineDPOTrainerOptions, type OnlinePair } from './trainer.js';
export { OnlineDPOConfigSchema, ONLINE_DPO_CONFIG, ONLINE_LOSS_TYPES, parseOnlineDpoConfig, betaForEpoch, type OnlineDPOConfig, type OnlineDPOConfigInput, type OnlineLossType } from './config.js';
export { penalizedScores, firstChosenByScores, firstChosenByJudge, pairIndices, onlineStepMetrics, type OnlineStepStats } from './pairs.js';
export { onlineDpoLosses, buildOnlineDpoLoss } from './loss.js';
export { openRanker, type PairRanker, type Ranking } from './rankers.js';
