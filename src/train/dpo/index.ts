/** DPO (`dpo train`, `dpo eval`): config, losses, trainer, evaluation on preference data. */
export * from './config.js';
export * from './losses.js';
export * from './trainer.js';
export * from './evaluate.js';
export * from './row-loss.js';
