/**
 * `dpo online`: online DPO (TRL's OnlineDPOTrainer): flags and/or a config file ->
 * OnlineDPOConfig -> OnlineDPOTrainer. `--config run.yaml|json` holds the same keys, flags override it.
 */
import { listScorers } from '../eval/scorers.js';
import { OnlineDPOConfigSchema } from '../train/online/config.js';
import type { OptionSpec } from './options.js';
import { optionsFromSchema } from './schema-options.js';

/** The flags of OnlineDPOConfigSchema; prompts are files on the command line (string lists are for the library). */
export const ONLINE_OPTIONS: readonly OptionSpec[] = optionsFromSchema(OnlineDPOConfigSchema).map((s) =>
  s.key === 'prompts' || s.key === 'evalPrompts' ? { ...s, kind: 'string' } : s.key === 'scorer' ? { ...s, description: `${s.description.replace(/ \(.*\)$/, '')} (${listScorers().map((e) => e.name).join(', ')})` } : s,
);

export const ONLINE_EXAMPLES = `
Examples:
  # Rank the two samples of every prompt with the ground-truth sentiment scorer
  $ dpo online --model ./sft-model --prompts prompts.jsonl --scorer sentiment --output runs/online \\
      --learning-rate 1e-5 --batch-size 16 --max-new-tokens 24 --max-steps 200 --eval-prompts heldout.jsonl

  # A reward model from \`dpo reward train\`, a penalty for samples that never end, IPO loss, LoRA
  $ dpo online --model ./sft-model --prompts prompts.jsonl --reward-model runs/rm --output runs/online-rm \\
      --missing-eos-penalty 1 --loss-type ipo --beta 0.5 --lora-r 16

  # An LLM judge (OpenAI-compatible endpoint) ranks the pairs, asked in both orders
  $ dpo online --model ./chat-model --prompts chat-prompts.jsonl --output runs/online-judge \\
      --judge-url https://api.openai.com/v1 --judge-model gpt-4o-mini --beta 0.1,0.05

  # Continue an interrupted run from its newest checkpoint
  $ dpo online --config online.yaml --resume

Each step samples two completions per prompt from the current policy (--temperature, --top-k,
--top-p, --max-new-tokens), ranks them (reward: the higher wins, a tie goes to the first sample;
judge: asked in both orders, verdicts cached in <output>/judge-verdicts.jsonl, a tie goes to the
first sample), and takes a DPO step on (chosen, rejected) against the frozen reference:
sigmoid -log sigmoid(beta d) or ipo (d - 1/(2 beta))^2, d = the pair's log-ratio difference of
SUMMED completion log-probs (TRL's online DPO). --beta 0.1,0.05 uses one beta per epoch.
Metrics go to <output>/metrics.jsonl with TRL's names: loss, objective/kl, objective/entropy,
objective/non_score_reward, objective/rlhf_reward, objective/scores, objective/scores_margin
(rewards only), rewards/{chosen,rejected,accuracies,margins}, logps/{chosen,rejected},
val/contain_eos_token, beta, grad_norm, learning_rate; with --eval-prompts eval_objective/kl and
eval_objective/scores. Checkpoints hold the step and prompt position, which fix every later
sample: --resume continues exactly as the uninterrupted run would have.`;
