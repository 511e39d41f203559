/** `dpo cpo` and `dpo orpo`: reference-free preference training (CPO / SimPO / AlphaPO, ORPO). */
import { CPOConfigSchema, ORPOConfigSchema } from '../train/reference-free/config.js';
import { optionsFromSchema } from './schema-options.js';
import { DPO_ONLY_KEYS } from './sft.js';

export const CPO_OPTIONS = optionsFromSchema(CPOConfigSchema, DPO_ONLY_KEYS);
export const ORPO_OPTIONS = optionsFromSchema(ORPOConfigSchema, DPO_ONLY_KEYS);

export const CPO_EXAMPLES = `
Examples:
  # CPO: sigmoid preference term + the chosen completions' NLL
  $ dpo cpo --model ./gpt2 --data prefs.jsonl --output runs/gpt2-cpo --learning-rate 5e-6

  # SimPO proper: token-mean log-probs, margin gamma, no NLL term
  $ dpo cpo --model ./gpt2 --data prefs.jsonl --output runs/gpt2-simpo --loss-type simpo --cpo-alpha 0 --beta 2 --simpo-gamma 0.5

  # AlphaPO: SimPO with the reward (1 - p^-alpha) / alpha
  $ dpo cpo --model ./gpt2 --data prefs.jsonl --output runs/gpt2-alphapo --loss-type alphapo --alpha 0.1 --cpo-alpha 0 --beta 2

No reference model: loss = mean over pairs of the --loss-type term on the policy's log-probs
(token-mean for ipo, simpo, alphapo) + --cpo-alpha x the chosen completions' token-mean NLL.
Metrics (TRL's names) in <output>/metrics.jsonl: loss, rewards/{chosen,rejected,accuracies,margins}
(beta x the policy's log-probs), logps/*, logits/*, nll_loss, grad_norm, learning_rate, eval_*.`;

export const ORPO_EXAMPLES = `
Examples:
  $ dpo orpo --model ./gpt2 --data prefs.jsonl --output runs/gpt2-orpo --learning-rate 8e-6 --beta 0.1
  $ dpo orpo --config orpo.yaml --lora-r 16 --resume

No reference model and no SFT stage: loss = the chosen completions' token-mean NLL
- beta x mean over pairs of log sigmoid(log odds(y_w) - log odds(y_l)), odds = p / (1 - p) of the
token-mean probability p. Metrics (TRL's names): loss, rewards/* (beta x token-mean log-probs),
logps/*, logits/*, nll_loss, log_odds_ratio, log_odds_chosen, grad_norm, learning_rate, eval_*.`;
