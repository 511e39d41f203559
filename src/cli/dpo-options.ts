/**
 * The flags of `dpo train` / `dpo eval`: one per key of DPOConfigSchema / EvalConfigSchema,
 * derived from the schema (kebab-case of the camelCase key; `lora.r` is `--lora-r`).
 */
import { TrainingOptionsSchema } from '../train/core/config.js';
import { DPOConfigSchema, EvalConfigSchema } from '../train/dpo/config.js';
import { listKeysOf, optionsFromSchema } from './schema-options.js';

export const TRAIN_OPTIONS = optionsFromSchema(DPOConfigSchema);

/** `--per-example <file>` is the CLI's own flag (it names the output file). */
export const EVAL_OPTIONS = optionsFromSchema(EvalConfigSchema, ['perExample']);

export const RUNTIME_OPTIONS = optionsFromSchema(TrainingOptionsSchema.pick({ threads: true, device: true }));

/** Keys whose config-file value may be a comma string instead of a list. */
export const LIST_KEYS = listKeysOf(TRAIN_OPTIONS);
