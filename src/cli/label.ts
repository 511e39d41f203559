/**
 * `dpo label`: collect preferences by hand. Serves a page on 127.0.0.1 showing each prompt with
 * K completions side by side — sampled from --model, or read from --completions — and appends the
 * choices to a preference JSONL that `dpo train` reads. Runs until Ctrl-C, then prints a summary.
 */
import type { Command } from 'commander';
import { z } from 'zod';
import { option, type OptionMeta } from '../config/option.js';
import { RuntimeOptionsSchema } from '../config/runtime.js';
import { PromptSourceSchema, SamplingOptionsSchema } from '../config/sampling.js';
import { DpoError } from '../errors.js';
import { DEFAULT_LABEL_PORT, runLabel, type RunningLabel } from '../label/run.js';
import { skippedPath } from '../label/store.js';
import { printJson, type CliContext } from './context.js';
import { addOptions } from './options.js';
import { configFromFlags, optionsFromSchema } from './schema-options.js';
import { untilInterrupted } from './signals.js';

const sampling = SamplingOptionsSchema.shape;
const temperature = sampling.temperature.unwrap();

/**
 * The flags of `dpo label`: the shared prompt, sampling and runtime options (with --model and
 * --prompts), or --completions FILE; runLabel says which combination is wrong.
 */
export const LabelFlagsSchema = z
  .object({
    model: option(PromptSourceSchema.shape.model.optional(), 'the model that samples the completions (folder, hub id or LoRA adapter folder); with --prompts', {
      arg: 'path|hub-id',
      group: 'model',
    }),
    prompts: option(PromptSourceSchema.shape.prompts.optional(), 'prompts file or folder ({"prompt": ...} or conversational rows); with --model', { arg: 'path', group: 'data' }),
    completions: option(z.string().min(1).optional(), 'label existing completions instead: {"prompt", "completions": [...]} rows, e.g. dpo generate output', {
      arg: 'path',
      group: 'data',
    }),
    output: option(z.string().min(1), 'preference JSONL to append to (resumed when it exists)', { arg: 'file', group: 'checkpoints' }),
    // No zod default: with --completions, K is the file's.
    numCompletions: option(z.number().int().min(2).optional(), 'completions per prompt, 2 to 9 (K > 2 writes rankings)', {
      arg: 'k',
      group: 'generation',
      defaultText: "2; with --completions, the file's K",
    }),
    port: option(z.number().int().min(0).default(DEFAULT_LABEL_PORT), 'port on 127.0.0.1 (0: any free port)', { group: 'runtime' }),
    maxNewTokens: sampling.maxNewTokens,
    // Above 0: greedy decoding would show K identical completions.
    temperature: option(temperature.gt(0), 'sampling temperature', temperature.meta() as OptionMeta).optional(),
    topK: sampling.topK,
    topP: sampling.topP,
    maxPromptTokens: sampling.maxPromptTokens,
    seed: sampling.seed,
    threads: RuntimeOptionsSchema.shape.threads,
    onBadRow: option(PromptSourceSchema.shape.onBadRow.unwrap().default('error'), 'malformed prompt (or --completions) rows: error (list them and stop) or skip (report them)', {
      arg: 'action',
      group: 'data',
    }),
  })
  .strict();

export const LABEL_OPTIONS = optionsFromSchema(LabelFlagsSchema);

const EXAMPLES = `
Open the printed address in a browser. Keys: 1/2 pick the better completion (with
--num-completions K > 2, press 1-K in order of preference: the last one is implied), t tie,
s skip, u or Backspace undo. Progress is shown on the page.

--completions FILE labels completions that already exist instead of sampling them (no --model
or --prompts): rows {"prompt": ..., "completions": [c1, ..., cK]} as dpo generate writes them
(prompt a string or a message list; a completion a string or a one-message assistant list; the
same K, 2 to 9, in every row), with optional "finish_reasons": ["eos"|"stop"|"length"|null, ...]
so the page can say which completions were cut at the token limit.

Output: {"prompt", "chosen", "rejected"} rows (K = 2) or {"prompt", "completions": [best, ...,
worst]} rankings (K > 2), the formats dpo train reads. Ties and skips go to
<output>.skipped.jsonl. Run the same command again to resume: decided prompts (and ties) are not
shown again, skipped prompts are offered again, and new rows are appended (existing lines are
never rewritten). Completions of prompt i come from seed (--seed, i), so a resumed session shows
the same ones. One server per output file (a second one refuses to start).

Examples:
  $ dpo label --model runs/sft --prompts prompts.jsonl --output prefs.jsonl
  $ dpo label --model runs/sft --prompts prompts.jsonl --output ranks.jsonl --num-completions 4 --temperature 0.8
  $ dpo generate --model runs/sft --prompts prompts.jsonl --output samples.jsonl --num-samples 2
  $ dpo label --completions samples.jsonl --output prefs.jsonl
  $ dpo train --model runs/sft --data prefs.jsonl --output runs/dpo`;

export function register(program: Command, ctx: CliContext): void {
  const cmd = program
    .command('label')
    .description('label preferences by hand in a local web page: K completions per prompt (sampled, or from a file), keyboard choices');
  addOptions(cmd, LABEL_OPTIONS, LabelFlagsSchema);
  cmd
    .addHelpText('after', EXAMPLES)
    .action(async (flags: Record<string, unknown>) => {
      const options = { ...configFromFlags(LabelFlagsSchema, LABEL_OPTIONS, flags), log: (message: string) => ctx.io.stderr.write(`${message}\n`) };
      if (options.port > 65535) throw new DpoError(`--port: expected a port number up to 65535, got '${options.port}'`);
      const running: RunningLabel = await runLabel(options);
      const interrupted = untilInterrupted();
      for (const bad of running.skippedRows) ctx.io.stderr.write(`skipped ${bad.file}:${bad.line}: ${bad.reason}\n`);
      const start = running.session.snapshot();
      ctx.io.stderr.write(
        `dpo label: ${start.done} of ${start.total} prompts already decided in ${options.output}${start.counts.skips > 0 ? ` (${start.counts.skips} skipped before, offered again)` : ''}; open ${running.url} in a browser (Ctrl-C to stop)\n`,
      );
      await interrupted;
      const end = await running.session.snapshot();
      await running.close();
      ctx.io.stderr.write(`dpo label: stopped; ${end.done} of ${end.total} prompts decided\n`);
      printJson(ctx, { output: options.output, skipped: skippedPath(options.output), total: end.total, done: end.done, ...end.counts });
    });
}
