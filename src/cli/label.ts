/**
 * `dpo label`: collect preferences by hand. Serves a page on 127.0.0.1 showing each prompt with
 * K completions side by side — sampled from --model, or read from --completions — and appends the
 * choices to a preference JSONL that `dpo train` reads. Runs until Ctrl-C, then prints a summary.
 */
import type { Command } from 'commander';
import { DpoError } from '../errors.js';
import { DEFAULT_LABEL_PORT, runLabel, type RunningLabel } from '../label/run.js';
import { skippedPath } from '../label/store.js';
import { printJson, type CliContext } from './context.js';
import { optionalInteger, optionalNumber } from './options.js';

interface LabelFlags {
  model?: string;
  prompts?: string;
  completions?: string;
  output: string;
  numCompletions: string;
  port: string;
  maxNewTokens?: string;
  temperature?: string;
  topK?: string;
  topP?: string;
  maxPromptTokens?: string;
  seed: string;
  threads?: string;
  onBadRow: string;
}

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

/** Waits for Ctrl-C (SIGINT) or SIGTERM. */
function untilInterrupted(): Promise<void> {
  return new Promise((resolve) => {
    const stop = (): void => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}

export function register(program: Command, ctx: CliContext): void {
  program
    .command('label')
    .description('label preferences by hand in a local web page: K completions per prompt (sampled, or from a file), keyboard choices')
    .option('--model <path|hub-id>', 'model that samples the completions (folder, hub id or LoRA adapter folder); with --prompts')
    .option('--prompts <path>', 'prompts file or folder ({"prompt": ...} or conversational rows); with --model')
    .option('--completions <path>', 'label existing completions instead: {"prompt", "completions": [...]} rows, e.g. dpo generate output')
    .requiredOption('--output <file>', 'preference JSONL to append to (resumed when it exists)')
    .option('--num-completions <k>', "completions per prompt, 2 to 9 (K > 2 writes rankings); with --completions, the file's K", '2')
    .option('--port <n>', 'port on 127.0.0.1 (0: any free port)', String(DEFAULT_LABEL_PORT))
    .option('--max-new-tokens <n>', 'new tokens per completion at most (default: generation_config.json, else 64)')
    .option('--temperature <t>', 'sampling temperature (default: generation_config.json, else 1)')
    .option('--top-k <k>', 'keep the k most likely tokens; 0 disables (default: generation_config.json, else 50)')
    .option('--top-p <p>', 'nucleus sampling (default: generation_config.json, else 1)')
    .option('--max-prompt-tokens <n>', 'keep only the last n prompt tokens')
    .option('--seed <s>', 'random seed of the completions', '0')
    .option('--threads <n>', 'ONNX Runtime intra-op threads (default: all cores)')
    .option('--on-bad-row <mode>', "malformed prompt (or --completions) rows: 'error' or 'skip'", 'error')
    .addHelpText('after', EXAMPLES)
    .action(async (flags: LabelFlags, command: Command) => {
      if (flags.onBadRow !== 'error' && flags.onBadRow !== 'skip') throw new DpoError(`--on-bad-row must be 'error' or 'skip', got '${flags.onBadRow}'`);
      const options = {
        model: flags.model,
        prompts: flags.prompts,
        completions: flags.completions,
        output: flags.output,
        numCompletions: flags.completions !== undefined && command.getOptionValueSource('numCompletions') !== 'cli' ? undefined : optionalInteger(flags.numCompletions, '--num-completions', 2),
        port: optionalInteger(flags.port, '--port', 0),
        maxNewTokens: optionalInteger(flags.maxNewTokens, '--max-new-tokens', 1),
        temperature: optionalNumber(flags.temperature, '--temperature', (n) => n > 0, 'a number > 0'),
        topK: optionalInteger(flags.topK, '--top-k', 0),
        topP: optionalNumber(flags.topP, '--top-p', (n) => n > 0 && n <= 1, 'a number in (0, 1]'),
        maxPromptTokens: optionalInteger(flags.maxPromptTokens, '--max-prompt-tokens', 1),
        seed: optionalInteger(flags.seed, '--seed', 0),
        threads: optionalInteger(flags.threads, '--threads', 1),
        onBadRow: flags.onBadRow as 'error' | 'skip',
        log: (message: string) => ctx.io.stderr.write(`${message}\n`),
      };
      if (options.port !== undefined && options.port > 65535) throw new DpoError(`--port: expected a port number up to 65535, got '${flags.port}'`);
      const running: RunningLabel = await runLabel(options);
      const interrupted = untilInterrupted();
      for (const bad of running.skippedRows) ctx.io.stderr.write(`skipped ${bad.file}:${bad.line}: ${bad.reason}\n`);
      const start = running.session.snapshot();
      ctx.io.stderr.write(
        `dpo label: ${start.done} of ${start.total} prompts already decided in ${flags.output}${start.counts.skips > 0 ? ` (${start.counts.skips} skipped before, offered again)` : ''}; open ${running.url} in a browser (Ctrl-C to stop)\n`,
      );
      await interrupted;
      const end = await running.session.snapshot();
      await running.close();
      ctx.io.stderr.write(`dpo label: stopped; ${end.done} of ${end.total} prompts decided\n`);
      printJson(ctx, { output: flags.output, skipped: skippedPath(flags.output), total: end.total, done: end.done, ...end.counts });
    });
}
