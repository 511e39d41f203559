/**
 * `dpo quickstart`: DPO end to end on the shipped small model in a few minutes on a CPU (the DPO
 * paper's controlled-sentiment experiment in miniature), with a before/after table and an HTML
 * report.
 */
import { DEVICE_FLAG, DEVICE_HELP, parseDevice } from './device-option.js';
import type { Command } from 'commander';
import { DpoError } from '../errors.js';
import { loadPrompts } from '../generate/prompts.js';
import { stopOnSignals } from './signals.js';
import { runQuickstart, SHIPPED_MODEL, type QuickstartSummary } from '../quickstart/run.js';
import { listScorers } from '../eval/scorers.js';
import type { CliContext } from './context.js';
import { parseInteger, parseNumber } from './options.js';

interface QuickstartFlags {
  model?: string;
  output: string;
  prompts?: string;
  heldOutPrompts?: string;
  scorer: string;
  samples: string;
  evalSamples: string;
  steps: string;
  beta: string;
  learningRate: string;
  batchSize: string;
  maxNewTokens: string;
  seed: string;
  threads?: string;
  device?: string;
}

const EXAMPLES = `
What it does: samples 6 continuations for each of 40 short prompts from the model, ranks them
with the scorer (VADER sentiment by default), writes the preference pairs to
<output>/preferences.jsonl, trains DPO with the model itself as the reference, then compares
fresh samples on 16 held-out prompts before and after (mean reward, KL(pi||pi_ref), implicit-reward
accuracy) and writes <output>/report.html.

Examples:
  $ dpo quickstart
  $ dpo quickstart --steps 100 --beta 0.05 --output runs/qs
  $ dpo quickstart --model ./my-gpt2 --prompts my-prompts.jsonl --scorer length`;

function positive(flag: string, v: string): number {
  const n = parseInteger(flag, v);
  if (n < 1) throw new DpoError(`${flag}: expected a positive integer, got '${v}'`);
  return n;
}

export function register(program: Command, ctx: CliContext): void {
  program
    .command('quickstart')
    .description('DPO end to end on the shipped small model: sample, rank, train, compare, report')
    .option('--model <path|hub-id>', `policy and reference model (default: the shipped ${SHIPPED_MODEL.split('/').pop()})`)
    .option('--output <dir>', 'output folder', 'dpo-quickstart')
    .option('--prompts <file>', 'training prompts ({"prompt": ...} rows; default: 40 built-in openings)')
    .option('--held-out-prompts <file>', 'evaluation prompts (default: 16 built-in openings)')
    .option('--scorer <name>', `ground-truth reward (${listScorers().map((s) => s.name).join(', ')})`, 'sentiment')
    .option('--samples <k>', 'samples per training prompt (pairs = all pairs with different rewards)', '6')
    .option('--eval-samples <k>', 'samples per held-out prompt for the before/after comparison', '8')
    .option('--steps <n>', 'DPO optimizer steps', '120')
    .option('--beta <b>', 'DPO beta', '0.1')
    .option('--learning-rate <lr>', 'AdamW learning rate', '1e-4')
    .option('--batch-size <n>', 'pairs per step', '16')
    .option('--max-new-tokens <n>', 'tokens per sampled continuation', '24')
    .option('--seed <s>', 'random seed', '0')
    .option('--threads <n>', 'ONNX Runtime threads (default: all cores)')
    .option(DEVICE_FLAG, DEVICE_HELP, 'cpu')
    .addHelpText('after', EXAMPLES)
    .action(async (f: QuickstartFlags) => {
      const readPrompts = async (path: string | undefined): Promise<string[] | undefined> =>
        path ? (await loadPrompts(path, undefined)).prompts.map((p) => p.text) : undefined;
      const trainPrompts = await readPrompts(f.prompts);
      const heldOutPrompts = await readPrompts(f.heldOutPrompts);
      const progress = ctx.progress();
      const options = {
        model: f.model,
        output: f.output,
        trainPrompts,
        heldOutPrompts,
        scorer: f.scorer,
        samplesPerPrompt: positive('--samples', f.samples),
        evalSamplesPerPrompt: positive('--eval-samples', f.evalSamples),
        steps: positive('--steps', f.steps),
        beta: parseNumber('--beta', f.beta),
        learningRate: parseNumber('--learning-rate', f.learningRate),
        batchSize: positive('--batch-size', f.batchSize),
        maxNewTokens: positive('--max-new-tokens', f.maxNewTokens),
        seed: parseInteger('--seed', f.seed),
        threads: f.threads ? positive('--threads', f.threads) : undefined,
        device: parseDevice(f.device),
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
