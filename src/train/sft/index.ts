/** SFT (`dpo sft`): config, loss, trainer. */
export * from './config.js';
export * from './loss.js';
export * from './trainer.js';
