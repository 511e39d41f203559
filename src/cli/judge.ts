/**
 * `dpo judge agreement`: how often a judge (an LLM behind an OpenAI-compatible endpoint, or a
 * built-in scorer offline) agrees with human preference labels, and how often the humans agree
 * with each other, as in the DPO paper's human study. A thin layer over eval/judge-agreement.ts;
 * its flags are read off {@link JudgeAgreementFlagsSchema}.
 */
import { Option, type Command } from 'commander';
import { z } from 'zod';
import { DpoError } from '../errors.js';
import { formatAgreementReport, judgeAgreement, llmAgreementJudge, loadHumanLabels, scorerAgreementJudge, type AgreementJudge, type AgreementReport } from '../eval/judge-agreement.js';
import { JUDGE_TEMPLATES, VerdictCache, type JudgeTemplateName } from '../eval/judge.js';
import { getScorer, listScorers } from '../eval/scorers.js';
import { option } from '../train/config.js';
import { defaultCacheDir } from '../train/reference.js';
import type { CliContext, CliStream } from './context.js';
import { addOptions, validateConfig, valuesFromFlags, type OptionSpec } from './options.js';
import { optionsFromSchema } from './schema-options.js';

/** The command's options; the flags, their help and defaults are derived from this schema. */
export const JudgeAgreementFlagsSchema = z
  .object({
    pairs: option(z.array(z.string().min(1)).nonempty(), 'human preference file or folder (prompt/chosen/rejected or ranking rows, e.g. dpo label output); repeat for several people', 'file'),
    judgeUrl: option(z.string().regex(/^https?:\/\//i, 'must start with http:// or https://').optional(), 'OpenAI-compatible API base URL (…/v1) or …/chat/completions of the LLM judge', 'url'),
    judgeModel: option(z.string().min(1).optional(), 'model name sent to the judge endpoint', 'name'),
    judgeApiKeyEnv: option(z.string().min(1).default('OPENAI_API_KEY'), 'environment variable holding the judge API key, sent as Bearer', 'var'),
    template: option(z.enum(JUDGE_TEMPLATES as [JudgeTemplateName, ...JudgeTemplateName[]]).default('dialogue'), "the DPO paper's comparison prompt", 'name'),
    scorer: option(z.string().min(1).optional(), `judge offline with a built-in scorer instead of an LLM (${listScorers().map((s) => s.name).join(', ')})`, 'name'),
    judgeConcurrency: option(z.number().int().min(1).default(4), 'judge requests in flight at once'),
    judgeMaxAttempts: option(z.number().int().min(1).default(6), 'tries per judge request (first one included)'),
    judgeTimeout: option(z.number().positive().default(120), 'seconds one judge request may take before it is abandoned (and retried)', 'seconds'),
    cacheDir: option(z.string().min(1).optional(), 'where judge verdicts are cached, in judge-verdicts.jsonl (default: $DPO_TS_CACHE or ~/.cache/dpo-ts)', 'dir'),
    onBadRow: option(z.enum(['error', 'skip']).default('error'), 'malformed preference rows: error (list them and stop) or skip (and count them)', 'mode'),
    json: option(z.boolean().default(false), 'print the report as one JSON object instead of tables'),
  })
  .strict();

export type JudgeAgreementFlags = z.output<typeof JudgeAgreementFlagsSchema>;

const ALL_SPECS = optionsFromSchema(JudgeAgreementFlagsSchema);
/** --pairs is repeatable (commander keeps every value), so it is added by hand from its spec. */
const PAIRS_SPEC = ALL_SPECS.find((s) => s.key === 'pairs') as OptionSpec;
const SPECS = ALL_SPECS.filter((s) => s !== PAIRS_SPEC).map((s) => (s.key === 'json' ? { ...s, negatable: false } : s));

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
  cmd.addOption(new Option(`--pairs <${PAIRS_SPEC.arg}>`, PAIRS_SPEC.description).argParser((v: string, prev: string[] | undefined) => [...(prev ?? []), v]));
  addOptions(cmd, SPECS);
  cmd.addHelpText('after', EXAMPLES).action(async (opts: Record<string, unknown>) => {
    await runJudgeAgreement(opts, { stdout: ctx.io.stdout, stderr: ctx.io.stderr });
  });
}

/** The command's work from commander's parsed flags, callable without commander (tests, scripts). */
export async function runJudgeAgreement(
  opts: Record<string, unknown>,
  io: { stdout: CliStream; stderr: CliStream; env?: NodeJS.ProcessEnv; fetch?: typeof fetch; sleep?: (ms: number) => Promise<void> },
): Promise<AgreementReport> {
  const fromFlags = { ...valuesFromFlags(opts, SPECS), ...(opts.pairs !== undefined ? { pairs: opts.pairs } : {}) };
  const o = validateConfig(JudgeAgreementFlagsSchema, fromFlags, fromFlags, SPECS, undefined);
  if (o.scorer !== undefined && o.judgeUrl !== undefined) throw new DpoError('--scorer and --judge-url: give one judge');
  if (o.judgeUrl !== undefined && o.judgeModel === undefined) throw new DpoError('--judge-url needs --judge-model (the model name the endpoint serves)');
  if (o.judgeModel !== undefined && o.judgeUrl === undefined) throw new DpoError('--judge-model needs --judge-url');
  if (o.scorer === undefined && o.judgeUrl === undefined) throw new DpoError('no judge: give --judge-url and --judge-model (an LLM), or --scorer (offline)');
  const env = io.env ?? process.env;
  let judge: AgreementJudge;
  if (o.scorer !== undefined) {
    const s = getScorer(o.scorer);
    judge = scorerAgreementJudge(s.name, s.score);
  } else {
    const apiKey = env[o.judgeApiKeyEnv];
    // An explicitly named variable must be set; the default one may be absent (local servers need no key).
    if (!apiKey && o.judgeApiKeyEnv !== 'OPENAI_API_KEY') throw new DpoError(`--judge-api-key-env: environment variable ${o.judgeApiKeyEnv} is not set`);
    let last = -1;
    judge = llmAgreementJudge({
      url: o.judgeUrl as string,
      model: o.judgeModel as string,
      apiKey: apiKey || undefined,
      template: o.template,
      concurrency: o.judgeConcurrency,
      maxAttempts: o.judgeMaxAttempts,
      timeoutMs: o.judgeTimeout * 1000,
      cacheFile: VerdictCache.fileIn(o.cacheDir ?? defaultCacheDir()),
      fetch: io.fetch,
      sleep: io.sleep,
      onRetry: ({ attempt, delayMs, reason }) => io.stderr.write(`judge: ${reason}; retry ${attempt} in ${(delayMs / 1000).toFixed(1)} s\n`),
      onProgress: (done, total) => {
        // A line per tenth of the questions: enough to see it move without flooding a log.
        const step = Math.floor((10 * done) / Math.max(1, total));
        if (step !== last && total > 0) io.stderr.write(`judge: ${done}/${total} questions answered\n`);
        last = step;
      },
    });
  }
  const labels = [];
  for (const path of o.pairs) labels.push(await loadHumanLabels(path, { onBadRow: o.onBadRow }));
  const report = await judgeAgreement(labels, judge);
  io.stdout.write(o.json ? `${JSON.stringify(report)}\n` : formatAgreementReport(report));
  return report;
}
