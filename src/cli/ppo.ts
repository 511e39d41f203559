/**
 * `dpo ppo`: RLHF with PPO (the DPO paper's baseline): flags and/or a config file -> PPOConfig ->
 * PPOTrainer. `--config run.yaml|json` holds the same keys, flags override it.
 */
import { listScorers } from '../eval/scorers.js';
import { PPOConfigSchema } from '../train/ppo/config.js';
import type { OptionSpec } from './options.js';
import { optionsFromSchema } from './schema-options.js';

/** The flags of PPOConfigSchema; prompts are files on the command line (string lists are for the library). */
export const PPO_OPTIONS: readonly OptionSpec[] = optionsFromSchema(PPOConfigSchema).map((s) =>
  s.key === 'prompts' || s.key === 'evalPrompts' ? { ...s, kind: 'string' } : s.key === 'scorer' ? { ...s, description: `${s.description.replace(/ \(.*\)$/, '')} (${listScorers().map((e) => e.name).join(', ')}; 'sentiment' is the DPO paper's PPO-GT)` } : s,
);

export const PPO_EXAMPLES = `
Examples:
  # PPO-GT: the ground-truth sentiment scorer as the reward (the DPO paper's PPO-GT)
  $ dpo ppo --model ./sft-model --prompts prompts.jsonl --scorer sentiment --output runs/ppo-gt \\
      --learning-rate 1e-5 --batch-size 16 --max-steps 200

  # RLHF: a reward model from \`dpo reward train\`, adaptive KL controller towards KL = 6 nats
  $ dpo ppo --model ./sft-model --prompts prompts.jsonl --reward-model runs/rm --output runs/ppo \\
      --init-kl-coef 0.2 --target-kl 6 --eval-prompts heldout.jsonl --eval-steps 20

  # Continue an interrupted run from its newest checkpoint
  $ dpo ppo --config ppo.yaml --resume

Each update samples one response per prompt from the policy (temperature 1, no top-k/top-p),
rewards it, adds the per-token KL penalty against the frozen reference, estimates advantages with
GAE, and runs --ppo-epochs passes of clipped-surrogate + clipped-value minibatch steps. The value
head is saved inside the output's model.safetensors as v_head.summary.weight/bias (TRL's
AutoModelForCausalLMWithValueHead layout; transformers ignores the two keys). Metrics go to
<output>/metrics.jsonl with TRL's names (objective/kl, objective/scores, objective/rlhf_reward,
policy/clipfrac_avg, policy/approxkl_avg, loss/policy_avg, loss/value_avg, val/clipfrac_avg, ...).`;
