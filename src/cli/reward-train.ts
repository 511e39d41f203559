/** `dpo reward train`'s flags and help (registered by trainers.ts, under `dpo reward`). */
import { RewardConfigSchema } from '../train/reward/config.js';
import { optionsFromSchema } from './schema-options.js';
import { DPO_ONLY_KEYS } from './sft.js';

export const REWARD_TRAIN_OPTIONS = optionsFromSchema(RewardConfigSchema, DPO_ONLY_KEYS);

export const REWARD_TRAIN_EXAMPLES = `
Examples:
  # A reward model from an SFT model, with held-out accuracy
  $ dpo reward train --model runs/gpt2-sft --data prefs.jsonl --eval-data heldout.jsonl --output runs/rm

  # LoRA on the body (the head is always trained; the saved model has the adapters merged)
  $ dpo reward train --model ./gpt2 --data prefs.jsonl --output runs/rm-lora --lora-r 16

The model is a scalar head score.weight [1, hidden] (no bias) on the last non-padding token,
trained with -log sigmoid(r(x,y_w) - r(x,y_l)). Rankings (prompt + completions, best first) are
trained on all ordered pairs of each row. Saved in the Hugging Face layout of a
*ForSequenceClassification model (num_labels 1). Rewards are shifted to mean 0 over the
training completions: score.weight has no bias, so the shift is stored in config.json as
reward_offset (normalised reward = raw score - reward_offset), which 'dpo reward score' applies.
Metrics: loss, accuracy, margin, mean_reward (+ eval_*) in <output>/metrics.jsonl.`;
