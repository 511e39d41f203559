/**
 * `dpo quickstart`: DPO end to end on the shipped small model in a few minutes on a CPU (the DPO
 * paper's controlled-sentiment experiment in miniature), with a before/after table and an HTML
 * report.
 */
import { basename } from 'node:path';
import type { Command } from 'commander';
import { z } from 'zod';
import { option } from '../config/option.js';
import { RuntimeOptionsSchema } from '../config/runtime.js';
import { SamplingOptionsSchema, withDefault } from '../config/sampling.js';
import { DPOConfigSchema } from '../train/dpo/config.js';
import { loadPrompts } from '../generate/prompts.js';
import { stopOnSignals } from './signals.js';
import { QUICKSTART_DEFAULTS, runQuickstart, SHIPPED_MODEL, type QuickstartSummary } from '../quickstart/run.js';
import { listScorers } from '../eval/scorers.js';
import type { CliContext } from './context.js';
import { addOptions } from './options.js';
import { configFromFlags, optionsFromSchema } from './schema-options.js';

const D = QUICKSTART_DEFAULTS;

/** The flags of `dpo quickstart`, defaults from the library's QUICKSTART_DEFAULTS. */
export const QuickstartFlagsSchema = z
  .object({
    model: option(z.string().min(1).optional(), 'policy and reference model', { arg: 'path|hub-id', group: 'model', defaultText: `the shipped ${basename(SHIPPED_MODEL)}` }),
    output: option(z.string().min(1).default(D.output), 'output folder', { arg: 'dir', group: 'checkpoints' }),
    prompts: option(z.string().min(1).optional(), 'training prompts ({"prompt": ...} rows)', { arg: 'file', group: 'data', defaultText: '40 built-in openings' }),
    heldOutPrompts: option(z.string().min(1).optional(), 'evaluation prompts', { arg: 'file', group: 'data', defaultText: '16 built-in openings' }),
    scorer: option(z.string().min(1).default(D.scorer), `ground-truth reward (${listScorers().map((s) => s.name).join(', ')})`, { arg: 'name', group: 'reward' }),
    samples: option(z.number().int().min(1).default(D.samplesPerPrompt), 'samples per training prompt (pairs = all pairs with different rewards)', { arg: 'k', group: 'generation' }),
    evalSamples: option(z.number().int().min(1).default(D.evalSamplesPerPrompt), 'samples per held-out prompt for the before/after comparison', { arg: 'k', group: 'generation' }),
    maxNewTokens: withDefault(SamplingOptionsSchema.shape.maxNewTokens, D.maxNewTokens),
    steps: option(z.number().int().min(1).default(D.steps), 'DPO optimizer steps', { group: 'optimisation' }),
    beta: withDefault(DPOConfigSchema.shape.beta, D.beta),
    learningRate: withDefault(DPOConfigSchema.shape.learningRate, D.learningRate),
    batchSize: option(z.number().int().min(1).default(D.batchSize), 'pairs per step', { group: 'optimisation' }),
    seed: option(z.number().int().default(D.seed), 'random seed of the samples and of training', { arg: 's', group: 'optimisation' }),
    threads: RuntimeOptionsSchema.shape.threads,
    device: RuntimeOptionsSchema.shape.device,
  })
  .strict();

export const QUICKSTART_OPTIONS = optionsFromSchema(QuickstartFlagsSchema);

const EXAMPLES = `
What it does: samples ${D.samplesPerPrompt} continuations for each of 40 short prompts from the model, ranks them
with the scorer (VADER sentiment by default), writes the preference pairs to
<output>/preferences.jsonl, trains DPO with the model itself as the reference, then compares
fresh samples on 16 held-out prompts before and after (mean reward, KL(pi||pi_ref), implicit-reward
accuracy) and writes <output>/report.html.

Examples:
  $ dpo quickstart
  $ dpo quickstart --steps 100 --beta 0.05 --output runs/qs
  $ dpo quickstart --model ./my-gpt2 --prompts my-prompts.jsonl --scorer length`;

export function register(program: Command, ctx: CliContext): void {
  const cmd = program.command('quickstart').description('DPO end to end on the shipped small model: sample, rank, train, compare, report');
  addOptions(cmd, QUICKSTART_OPTIONS, QuickstartFlagsSchema);
  cmd
    .addHelpText('after', EXAMPLES)
    .action(async (flags: Record<string, unknown>) => {
      const f = configFromFlags(QuickstartFlagsSchema, QUICKSTART_OPTIONS, flags);
      const readPrompts = async (path: string | undefined): Promise<string[] | undefined> =>
        path ? (await loadPrompts(path, undefined)).prompts.map((p) => p.text) : undefined;
      const progress = ctx.progress();
      const options = {
        model: f.model,
        output: f.output,
        trainPrompts: await readPrompts(f.prompts),
        heldOutPrompts: await readPrompts(f.heldOutPrompts),
        scorer: f.scorer,
        samplesPerPrompt: f.samples,
        evalSamplesPerPrompt: f.evalSamples,
        steps: f.steps,
        beta: f.beta,
        learningRate: f.learningRate,
        batchSize: f.batchSize,
        maxNewTokens: f.maxNewTokens,
        seed: f.seed,
        threads: f.threads,
        device: f.device,
        progress,
      };
      // SIGINT/SIGTERM stop the training after its step; the report covers the steps done.
      const signals = stopOnSignals((m) => progress.log(m));
      const summary = await runQuickstart({ ...options, signal: signals.signal }).finally(() => signals.dispose());
      ctx.io.stderr.write(formatSummary(summary));
    });
}

/** The before/after table and a few samples, for the terminal. */
export function formatSummary(s: QuickstartSummary): string {
  const f = (v: number): string => (Number.isFinite(v) ? v.toFixed(3) : '—');
  const lines = [
    '',
    `                                         before    after`,
    `mean reward (held-out prompts)          ${f(s.before.reward).padStart(7)}  ${f(s.after.reward).padStart(7)}`,
    `KL(pi || pi_ref), nats per sequence     ${f(s.before.kl).padStart(7)}  ${f(s.after.kl).padStart(7)}`,
    `implicit-reward accuracy (held-out)           —  ${f(s.after.accuracy).padStart(7)}`,
    '',
    ...s.samples.slice(0, 3).flatMap((r) => [
      `${r.prompt}`,
      `  before (${f(r.beforeReward)}): ${r.before.trim()}`,
      `  after  (${f(r.afterReward)}): ${r.after.trim()}`,
    ]),
    '',
    `preference pairs: ${s.pairsFile}`,
    `report: ${s.report}`,
    `${s.seconds.toFixed(0)} s in all`,
    '',
  ];
  return lines.join('\n');
}
