/**
 * `dpo label`: collect preferences by hand. Serves a page on 127.0.0.1 showing each prompt with
 * K sampled completions side by side; the choices are appended to a preference JSONL that
 * `dpo train` reads. Runs until Ctrl-C, then prints a summary.
 */
import type { Command } from 'commander';
import { DpoError } from '../errors.js';
import { DEFAULT_LABEL_PORT, runLabel, type RunningLabel } from '../label/run.js';
import { skippedPath } from '../label/store.js';
import { printJson, type CliContext } from './context.js';
import { optionalInteger, optionalNumber } from './options.js';

interface LabelFlags {
  model: string;
  prompts: string;
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

Output: {"prompt", "chosen", "rejected"} rows (K = 2) or {"prompt", "completions": [best, ...,
worst]} rankings (K > 2), the formats dpo train reads. Ties and skips go to
<output>.skipped.jsonl. Run the same command again to resume: decided prompts are not shown
again and new rows are appended (existing lines are never rewritten). Completions of prompt i
come from seed (--seed, i), so a resumed session shows the same ones.

Examples:
  $ dpo label --model runs/sft --prompts prompts.jsonl --output prefs.jsonl
  $ dpo label --model runs/sft --prompts prompts.jsonl --output ranks.jsonl --num-completions 4 --temperature 0.8
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
    .description('label preferences by hand in a local web page: K sampled completions per prompt, keyboard choices')
    .requiredOption('--model <path|hub-id>', 'model that samples the completions (folder, hub id or LoRA adapter folder)')
    .requiredOption('--prompts <path>', 'prompts file or folder ({"prompt": ...} or conversational rows)')
    .requiredOption('--output <file>', 'preference JSONL to append to (resumed when it exists)')
    .option('--num-completions <k>', 'completions per prompt, 2 to 9 (K > 2 writes rankings)', '2')
    .option('--port <n>', 'port on 127.0.0.1 (0: any free port)', String(DEFAULT_LABEL_PORT))
    .option('--max-new-tokens <n>', 'new tokens per completion at most (default: generation_config.json, else 64)')
    .option('--temperature <t>', 'sampling temperature (default: generation_config.json, else 1)')
    .option('--top-k <k>', 'keep the k most likely tokens; 0 disables (default: generation_config.json, else 50)')
    .option('--top-p <p>', 'nucleus sampling (default: generation_config.json, else 1)')
    .option('--max-prompt-tokens <n>', 'keep only the last n prompt tokens')
    .option('--seed <s>', 'random seed of the completions', '0')
    .option('--threads <n>', 'ONNX Runtime intra-op threads (default: all cores)')
    .option('--on-bad-row <mode>', "malformed prompt rows: 'error' or 'skip'", 'error')
    .addHelpText('after', EXAMPLES)
    .action(async (flags: LabelFlags) => {
      if (flags.onBadRow !== 'error' && flags.onBadRow !== 'skip') throw new DpoError(`--on-bad-row must be 'error' or 'skip', got '${flags.onBadRow}'`);
      const options = {
        model: flags.model,
        prompts: flags.prompts,
        output: flags.output,
        numCompletions: optionalInteger(flags.numCompletions, '--num-completions', 2),
        port: optionalInteger(flags.port, '--port', 0),
        maxNewTokens: optionalInteger(flags.maxNewTokens, '--max-new-tokens', 1),
        temperature: optionalNumber(flags.temperature, '--temperature', (n) => n > 0, 'a number > 0'),
        topK: optionalInteger(flags.topK, '--top-k', 0),
        topP: optionalNumber(flags.topP, '--top-p', (n) => n > 0 && n <= 1, 'a number in (0, 1]'),
        maxPromptTokens: optionalInteger(flags.maxPromptTokens, '--max-prompt-tokens', 1),
        seed: optionalInteger(flags.seed, '--seed', 0),
        threads: optionalInteger(flags.threads, '--threads', 1),
        onBadRow: flags.onBadRow as 'error' | 'skip',
      };
      if (options.port !== undefined && options.port > 65535) throw new DpoError(`--port: expected a port number up to 65535, got '${flags.port}'`);
      const running: RunningLabel = await runLabel(options);
      const interrupted = untilInterrupted();
      for (const bad of running.skippedRows) ctx.io.stderr.write(`skipped ${bad.file}:${bad.line}: ${bad.reason}\n`);
      const start = running.session.snapshot();
      ctx.io.stderr.write(
        `dpo label: ${start.done} of ${start.total} prompts already decided in ${flags.output}; open ${running.url} in a browser (Ctrl-C to stop)\n`,
      );
      await interrupted;
      const end = await running.session.snapshot();
      await running.close();
      ctx.io.stderr.write(`dpo label: stopped; ${end.done} of ${end.total} prompts decided\n`);
      printJson(ctx, { output: flags.output, skipped: skippedPath(flags.output), total: end.total, done: end.done, ...end.counts });
    });
}
