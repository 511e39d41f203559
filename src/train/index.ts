/**
 * Training (`dpo-ts/train`), for trainer authors and for every method's pieces: the shared
 * runner, loop, policy, checkpoints and config machinery (core/), then one folder per method with
 * its config, loss(es) and trainer. Per-sequence log-probs, scorers, the reference cache and the
 * reward model are `dpo-ts/scoring`.
 */
export * from './core/index.js';
export * from './dpo/index.js';
export * from './kto/index.js';
export * from './reference-free/index.js';
export * from './reward/index.js';
export * from './ppo/index.js';
export * from './online/index.js';
// sft/ and dpo/ both name a loss `sftLoss`: the DPO family's term on log-probs keeps the name here.
export {
  SFTTrainer,
  SFTConfigSchema,
  SFT_CONFIG,
  SFT_DATA_FORMATS,
  parseSftConfig,
  prepareSftSplit,
  detectSftDataKind,
  tokenNll,
  sftLoss as sftTokenLoss,
  type SFTConfig,
  type SFTConfigInput,
  type SFTTrainerOptions,
  type SftDataKind,
  type SftSplit,
  type SftPrepareOptions,
  type TokenNll,
} from './sft/index.js';
