/**
 * The flags of `dpo train` / `dpo eval`: one per key of DPOConfigSchema / EvalConfigSchema,
 * derived from the schema (kebab-case of the camelCase key; `lora.r` is `--lora-r`).
 */
import { DPOConfigSchema, EvalConfigSchema } from '../train/dpo/config.js';
import { listKeysOf, optionsFromSchema } from './schema-options.js';

export const TRAIN_OPTIONS = optionsFromSchema(DPOConfigSchema);

/** `--per-example <file>` is the CLI's own flag (it names the output file). */
export const EVAL_OPTIONS = optionsFromSchema(EvalConfigSchema, ['perExample']);

/** Keys whose config-file value may be a comma string instead of a list. */
export const LIST_KEYS = listKeysOf(TRAIN_OPTIONS);
