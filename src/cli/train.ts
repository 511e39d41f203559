/** `dpo train`: flags and/or a config file -> DPOConfig -> DPOTrainer (registered by trainers.ts). */
import { DPO_CONFIG, type DPOConfig } from '../train/dpo/config.js';
import { TRAIN_OPTIONS } from './dpo-options.js';
import { resolveTrainerConfig } from './trainer-command.js';

export const TRAIN_EXAMPLES = `
Examples:
  # Full fine-tuning of a local model on prompt/chosen/rejected JSONL
  $ dpo train --model ./gpt2 --data prefs.jsonl --output runs/gpt2-dpo \\
      --learning-rate 5e-6 --beta 0.1 --batch-size 8 --gradient-accumulation-steps 4 \\
      --num-epochs 1 --eval-data heldout.jsonl --eval-steps 100 --save-steps 200

  # LoRA adapters on a hub model, IPO + a little SFT, cosine schedule with warm-up
  $ dpo train --model Qwen/Qwen2.5-0.5B --data ./hh/ --output runs/qwen-lora \\
      --lora-r 16 --lora-alpha 32 --loss-type ipo,sft --loss-weights 1,0.1 \\
      --lr-scheduler cosine --warmup-steps 50

  # Everything from a config file (same keys, camelCase/kebab-case/snake_case); flags override it
  $ dpo train --config run.yaml --max-steps 100

  # Print the resolved configuration without training
  $ dpo train --config run.yaml --print-config

  # Continue an interrupted run from its newest checkpoint
  $ dpo train --config run.yaml --resume

The final model is written to --output in Hugging Face layout (LoRA: a PEFT adapter folder),
metrics to <output>/metrics.jsonl; a JSON summary of the run is printed on stdout.`;

/** Flags + optional config file -> a validated DPOConfig (flags win over the file). */
export function resolveTrainConfig(opts: Record<string, unknown>): Promise<DPOConfig> {
  return resolveTrainerConfig(opts, DPO_CONFIG, TRAIN_OPTIONS, 'train');
}
