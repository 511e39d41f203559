/** `dpo eval`: eval_* metrics of a model on preference data as one JSON object. */
import { stat } from 'node:fs/promises';
import type { Command } from 'commander';
import { DpoError } from '../errors.js';
import { writeBytesAtomic } from '../io/atomic.js';
import { checkedConfig } from '../train/core/config.js';
import { EVAL_CONFIG } from '../train/dpo/config.js';
import { printJson, type CliContext } from './context.js';
import { EVAL_OPTIONS } from './dpo-options.js';
import { addOptions, validateConfig, valuesFromFlags } from './options.js';

const EXAMPLES = `
Examples:
  # A trained model against its starting point
  $ dpo eval --model runs/gpt2-dpo --ref-model ./gpt2 --data heldout.jsonl

  # Baseline: the model as its own reference (rewards 0, sigmoid loss ln 2)
  $ dpo eval --model ./gpt2 --data heldout.jsonl --beta 0.1

  # Per-row log-probs, rewards and losses, one JSON line per row in input order
  $ dpo eval --model runs/gpt2-dpo --ref-model ./gpt2 --data heldout.jsonl --per-example rows.jsonl

  # IPO loss, metrics piped into jq
  $ dpo eval --model runs/gpt2-ipo --ref-model ./gpt2 --data heldout.jsonl --loss-type ipo | jq .eval_loss

Prints one JSON object on stdout: eval_loss, eval_rewards/{chosen,rejected,accuracies,margins},
eval_logps/{chosen,rejected}, eval_logits/{chosen,rejected}, eval_rows, eval_runtime,
eval_samples_per_second. Per-example rows hold policy_chosen_logps, policy_rejected_logps,
reference_chosen_logps, reference_rejected_logps, chosen_reward, rejected_reward and loss
(for rankings of K > 2 the rejected fields are arrays, best first).`;

export function register(program: Command, ctx: CliContext): void {
  const cmd = program.command('eval').description('evaluate a model as a DPO policy on preference data (metrics as one JSON object)');
  addOptions(cmd, EVAL_OPTIONS, EVAL_CONFIG.schema);
  cmd
    .option('--per-example <file>', 'also write one JSON line per row (input order) to <file>')
    .addHelpText('after', EXAMPLES)
    .action(async (opts: Record<string, unknown>) => {
      const fromFlags = valuesFromFlags(opts, EVAL_OPTIONS);
      const perExampleFile = typeof opts.perExample === 'string' ? opts.perExample : undefined;
      const input = { ...fromFlags, perExample: perExampleFile !== undefined };
      const config = checkedConfig(EVAL_CONFIG, validateConfig(EVAL_CONFIG.schema, input, fromFlags, EVAL_OPTIONS, undefined), 'eval');
      // Checked before the evaluation, not after it: a folder here would fail with a raw EISDIR at the end.
      if (perExampleFile && (await stat(perExampleFile).catch(() => undefined))?.isDirectory()) {
        throw new DpoError(`--per-example ${perExampleFile}: is a folder; give the path of a file to write`);
      }
      const { evaluatePreferences } = await import('../train/dpo/evaluate.js');
      const r = await evaluatePreferences(config, { progress: ctx.progress() });
      if (perExampleFile && r.perExample) {
        await writeBytesAtomic(perExampleFile, r.perExample.map((row) => `${JSON.stringify(row)}\n`).join(''));
      }
      printJson(ctx, r.metrics);
    });
}
