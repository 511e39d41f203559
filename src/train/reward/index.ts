/** Reward models (`dpo reward train`): config, Bradley-Terry loss, trainer. The model itself (load, save, score) is scoring/reward-model.ts. */
export * from './config.js';
export * from './loss.js';
export * from './trainer.js';
