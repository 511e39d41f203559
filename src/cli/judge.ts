/**
 * `dpo judge agreement`: how often a judge (an LLM behind an OpenAI-compatible endpoint, or a
 * built-in scorer offline) agrees with human preference labels, and how often the humans agree
 * with each other, as in the DPO paper's human study. A thin layer over eval/judge-agreement.ts;
 * its flags are read off {@link JudgeAgreementFlagsSchema}.
 */
import type { Command } from 'commander';
import { z } from 'zod';
import { formatAgreementReport, judgeAgreement, loadHumanLabels, type AgreementReport } from '../eval/judge-agreement.js';
import { option } from '../train/core/config.js';
import type { CliContext, CliStream } from './context.js';
import { JUDGE_FLAGS, pairJudgeFromFlags } from './judge-flags.js';
import { addOptions, validateConfig, valuesFromFlags, type OptionSpec } from './options.js';
import { optionsFromSchema } from './schema-options.js';

/** The command's options; the flags, their help and defaults are derived from this schema. */
export const JudgeAgreementFlagsSchema = z
  .object({
    pairs: option(z.array(z.string().min(1)).nonempty(), 'human preference file or folder (prompt/chosen/rejected or ranking rows, e.g. dpo label output); repeat for several people', {
      arg: 'file',
      repeat: true,
    }),
    ...JUDGE_FLAGS,
    onBadRow: option(z.enum(['error', 'skip']).default('error'), 'malformed preference rows: error (list them and stop) or skip (and count them)', 'mode'),
    json: option(z.boolean().default(false), 'print the report as one JSON object instead of tables'),
  })
  .strict();

export type JudgeAgreementFlags = z.output<typeof JudgeAgreementFlagsSchema>;

const SPECS: readonly OptionSpec[] = optionsFromSchema(JudgeAgreementFlagsSchema).map((s) => (s.key === 'json' ? { ...s, negatable: false } : s));

const EXAMPLES = `
For every comparison in the files (a preference row, or every pair of a ranking row), the judge
is asked in both orders with the DPO paper's prompt (temperature 0). Its verdict is the same
completion both times (agrees or disagrees with the person), position-inconsistent (the same
position both times), a tie (it answered tie/neither) or invalid (no A/B in an answer). Reported:
  agreement            agree / (agree + disagree + ties + inconsistent), 95% Wilson interval
  decisive agreement   agree / (agree + disagree)
  human vs human       with several --pairs files: share of the comparisons both labelled on
                       which two files chose the same completion (each pair of files, and pooled)
Comparisons labelled in several files are judged once. Verdicts are cached in
<cache-dir>/judge-verdicts.jsonl keyed by endpoint, model and prompt: a second run asks nothing.
With --scorer instead of --judge-url the judge runs offline: the higher score wins, equal = tie.

Examples:
  $ OPENAI_API_KEY=... dpo judge agreement --pairs alice.jsonl --pairs bob.jsonl \\
      --judge-url https://api.openai.com/v1 --judge-model gpt-4o --template summarization
  $ dpo judge agreement --pairs prefs.jsonl --judge-url http://127.0.0.1:8000/v1 --judge-model local --json
  $ dpo judge agreement --pairs alice.jsonl --pairs bob.jsonl --scorer sentiment`;

/** Adds `dpo judge` (and its subcommand `agreement`) to `program`. */
export function register(program: Command, ctx: CliContext): void {
  const judge = program.command('judge').description('study an LLM judge: agreement with human preference labels');
  const cmd = judge
    .command('agreement')
    .description('judge-human and human-human agreement on human-labelled preference pairs, with 95% intervals');
  addOptions(cmd, SPECS, JudgeAgreementFlagsSchema);
  cmd.addHelpText('after', EXAMPLES).action(async (opts: Record<string, unknown>) => {
    await runJudgeAgreement(opts, { stdout: ctx.io.stdout, stderr: ctx.io.stderr });
  });
}

/** The command's work from commander's parsed flags, callable without commander (tests, scripts). */
export async function runJudgeAgreement(
  opts: Record<string, unknown>,
  io: { stdout: CliStream; stderr: CliStream; env?: NodeJS.ProcessEnv; fetch?: typeof fetch; sleep?: (ms: number) => Promise<void> },
): Promise<AgreementReport> {
  const fromFlags = valuesFromFlags(opts, SPECS);
  const o = validateConfig(JudgeAgreementFlagsSchema, fromFlags, fromFlags, SPECS, undefined);
  const judge = pairJudgeFromFlags(o, io);
  const labels = [];
  for (const path of o.pairs) labels.push(await loadHumanLabels(path, { onBadRow: o.onBadRow }));
  const report = await judgeAgreement(labels, judge);
  io.stdout.write(o.json ? `${JSON.stringify(report)}\n` : formatAgreementReport(report));
  return report;
}
