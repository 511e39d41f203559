/** `dpo kto`: Kahneman-Tversky Optimization on unpaired (or split paired) data. */
import type { Command } from 'commander';
import { KTO_CONFIG, KTOConfigSchema } from '../train/kto/config.js';
import type { CliContext } from './context.js';
import { optionsFromSchema } from './schema-options.js';
import { registerTrainerCommand } from './trainer-command.js';

export const KTO_OPTIONS = optionsFromSchema(KTOConfigSchema);

const EXAMPLES = `
Examples:
  # Unpaired rows: {"prompt": ..., "completion": ..., "label": true|false}
  $ dpo kto --model ./gpt2 --data feedback.jsonl --output runs/gpt2-kto --learning-rate 5e-6

  # A preference file: every pair becomes a desirable and an undesirable example
  $ dpo kto --model ./gpt2 --data prefs.jsonl --output runs/gpt2-kto --undesirable-weight 1.33

Each example is also scored with the next example's completion (its mismatched KL pair) for
the KL estimate z = max(0, mean log pi/pi_ref of those pairs). Loss: desirable examples
w_d (1 - sigmoid(beta (r - z))), undesirable w_u (1 - sigmoid(beta (z - r))), r = log pi/pi_ref
(apo_zero_unpaired: 1 - sigmoid(beta r) and sigmoid(beta r)). Reference log-probs are
precomputed and cached. Metrics (TRL's names): loss, kl, rewards/{chosen,rejected,margins}
(chosen = desirable), logps/*, logits/*, grad_norm, learning_rate, eval_*.`;

export function register(program: Command, ctx: CliContext): void {
  registerTrainerCommand(program, ctx, {
    name: 'kto',
    label: 'kto',
    description: 'KTO: align on unpaired desirable / undesirable completions (or split preference pairs)',
    config: KTO_CONFIG,
    options: KTO_OPTIONS,
    configFiles: 'kto.yaml or kto.json',
    examples: EXAMPLES,
    run: async (config, progress, signal) => {
      const { KTOTrainer } = await import('../train/kto/trainer.js');
      return new KTOTrainer(config, { progress, signal }).train();
    },
  });
}
