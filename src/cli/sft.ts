/**
 * `dpo sft`: supervised fine-tuning, or Preferred-FT on a preference file (the chosen
 * completions). Flags are those of `dpo train` where they apply (no loss or reference options);
 * `--config run.yaml|json` holds the same keys, flags override it.
 */
import { SFTConfigSchema } from '../train/sft/config.js';
import { optionsFromSchema } from './schema-options.js';

/** Shared training keys that only DPO uses (no flag elsewhere). */
export const DPO_ONLY_KEYS = ['cacheDir'] as const;

export const SFT_OPTIONS = optionsFromSchema(SFTConfigSchema, DPO_ONLY_KEYS);

export const SFT_EXAMPLES = `
Examples:
  # Prompt/completion rows: loss on the completions only
  $ dpo sft --model ./gpt2 --data sft.jsonl --output runs/gpt2-sft --num-epochs 1

  # Preferred-FT: a preference file trains on its chosen completions (a DPO reference model)
  $ dpo sft --model ./gpt2 --data prefs.jsonl --output runs/gpt2-pref-ft

  # LoRA, from a config file, continuing an interrupted run
  $ dpo sft --config sft.yaml --lora-r 16 --resume

The data kind is detected from the file's fields: text / prompt+completion / messages rows are
SFT data (text and messages rows train on every token), chosen/rejected or completions rows are
preference data. Loss is the mean token NLL over all completion tokens of a step. Metrics go to
<output>/metrics.jsonl (loss, mean_token_accuracy, grad_norm, learning_rate, epoch,
tokens_per_second, eval_*); a JSON summary is printed on stdout.`;
