/** `dpo kto`: Kahneman-Tversky Optimization on unpaired (or split paired) data. */
import { KTOConfigSchema } from '../train/kto/config.js';
import { optionsFromSchema } from './schema-options.js';

export const KTO_OPTIONS = optionsFromSchema(KTOConfigSchema);

export const KTO_EXAMPLES = `
Examples:
  # Unpaired rows: {"prompt": ..., "completion": ..., "label": true|false}
  $ dpo kto --model ./gpt2 --data feedback.jsonl --output runs/gpt2-kto --learning-rate 5e-6

  # A preference file: every pair becomes a desirable and an undesirable example
  $ dpo kto --model ./gpt2 --data prefs.jsonl --output runs/gpt2-kto --undesirable-weight 1.33

Each example is also scored with the next example's completion over the whole file, cyclic
(its mismatched KL pair; TRL, 0.23 through 1.x, pairs example i with completion i-1 within each
block of per_device_train_batch_size rows instead) for the KL estimate z = max(0, mean log pi/pi_ref of those pairs). Loss: desirable examples
w_d (1 - sigmoid(beta (r - z))), undesirable w_u (1 - sigmoid(beta (z - r))), r = log pi/pi_ref
(apo_zero_unpaired: 1 - sigmoid(beta r) and sigmoid(beta r)). Reference log-probs are
precomputed and cached. Metrics (TRL's names): loss, kl, rewards/{chosen,rejected,margins}
(chosen = desirable), logps/*, logits/*, grad_norm, learning_rate, eval_*.`;
