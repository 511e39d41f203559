/** Reference-free pair trainers: CPO (with SimPO and AlphaPO) and ORPO, sharing one trainer. */
export * from './config.js';
export * from './losses.js';
export * from './trainer.js';
export * from './cpo.js';
export * from './orpo.js';
