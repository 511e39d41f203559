/**
 * `dpo reward train`: fit a reward model (Bradley-Terry) on preference data.
 * `dpo reward score`: rewards of prompt/completion rows (or of every completion of preference
 * rows) under a reward model, one JSON line per row in input order.
 */
import { rename, rm, writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { z } from 'zod';
import { loadPreferenceData, loadSftData } from '../data/load.js';
import { collatePreferences } from '../data/collate.js';
import { PREFERENCE_FORMATS } from '../data/preference-format.js';
import { SFT_FORMATS } from '../data/sft-format.js';
import { tokenizePreferences, type TokenizedPreference } from '../data/tokenize.js';
import type { OnBadRow, PreferenceFormat, RowOrigin, SftFormat } from '../data/types.js';
import { DpoError } from '../errors.js';
import { createProgress, type ProgressReporter } from '../progress.js';
import { loadRewardModel, rewardParameterShapes, RewardScorer } from '../scoring/reward-model.js';
import { REWARD_CONFIG, RewardConfigSchema } from '../train/reward/config.js';
import { RewardTrainer } from '../train/reward/trainer.js';
import { detectSftDataKind } from '../train/sft/trainer.js';
import { printJson, type CliContext } from './context.js';
import { RUNTIME_OPTIONS } from './dpo-options.js';
import { addOptions, validateConfig, valuesFromFlags, type OptionSpec } from './options.js';
import { optionsFromSchema } from './schema-options.js';
import { DPO_ONLY_KEYS } from './sft.js';
import { registerTrainerCommand } from './trainer-command.js';

export interface ScoreRewardsOptions {
  /** A reward model folder or hub id (sequence-classification layout). */
  model: string;
  /** prompt/completion, text or messages rows; or preference rows (every completion is scored). */
  data: string;
  /** JSONL written here (atomically). */
  output: string;
  format?: string;
  batchSize?: number;
  maxLength?: number;
  onBadRow?: OnBadRow;
  threads?: number;
  device?: 'cpu' | 'cuda';
  progress?: ProgressReporter;
}

interface ScoredRow {
  origin: RowOrigin;
  prompt: string;
  completions: string[];
  tokens: TokenizedPreference;
}

/**
 * Scores a data file with a reward model. Each output line holds the row's `line` (and `file`
 * when the data is several files), its prompt and completion(s) as rendered, and the reward:
 * `reward` for single-completion rows, `rewards` (best first) for preference rows. Rewards are
 * normalised (raw score minus the model's `reward_offset`). Rows too long for `maxLength` are
 * truncated as in training; malformed rows fail the run unless `onBadRow` is 'skip'.
 * Returns the number of rows written.
 */
export async function scoreRewards(o: ScoreRewardsOptions): Promise<number> {
  const progress = o.progress ?? createProgress();
  const model = await loadRewardModel(o.model);
  if (!model.tokenizer) throw new DpoError(`${model.dir}: no tokenizer.json; a tokenizer is needed to read text data`);
  const tokenizer = model.tokenizer;
  const format = o.format ?? 'auto';
  const kind = await detectSftDataKind(o.data, format);
  const loaded =
    kind === 'sft'
      ? await loadSftData(o.data, { format: format as SftFormat | 'auto', tokenizer, onBadRow: o.onBadRow })
      : await loadPreferenceData(o.data, { format: format as PreferenceFormat | 'auto', tokenizer, onBadRow: o.onBadRow });
  const manyFiles = loaded.files.length > 1;
  const rows: ScoredRow[] = [];
  for (const e of loaded.examples) {
    const completions = 'completion' in e ? [e.completion] : e.completions;
    const t = tokenizePreferences([{ prompt: e.prompt, completions, origin: e.origin }], tokenizer, { maxLength: o.maxLength ?? 1024 });
    if (t.rows.length === 0) throw new DpoError(`${e.origin.file}:${e.origin.line}: the prompt alone fills max-length ${o.maxLength ?? 1024}`);
    rows.push({ origin: e.origin, prompt: e.prompt, completions, tokens: t.rows[0] });
  }
  const shapes = rewardParameterShapes(model.model);
  const scorer = await RewardScorer.create(model.model, shapes, { threads: o.threads, executionProvider: o.device });
  const lines: string[] = [];
  const bs = o.batchSize ?? 8;
  try {
    progress.start('score', rows.length);
    let s = 0;
    while (s < rows.length) {
      // A batch holds consecutive rows with the same number of completions.
      const K = rows[s].completions.length;
      let e = s;
      while (e < rows.length && e - s < bs && rows[e].completions.length === K) e++;
      const chunk = rows.slice(s, e);
      const batch = collatePreferences(chunk.map((r) => r.tokens), { padTokenId: model.padTokenId });
      const raw = await scorer.score(batch, model.weights, model.padTokenId);
      const B = chunk.length;
      chunk.forEach((r, i) => {
        const rewards = Array.from({ length: K }, (_, k) => raw[k * B + i] - model.offset);
        const where = manyFiles ? { file: r.origin.file, line: r.origin.line } : { line: r.origin.line };
        const record = kind === 'sft' ? { ...where, prompt: r.prompt, completion: r.completions[0], reward: rewards[0] } : { ...where, prompt: r.prompt, completions: r.completions, rewards };
        lines.push(JSON.stringify(record));
      });
      s = e;
      progress.update(s);
    }
    progress.stop();
  } finally {
    await scorer.release();
  }
  const tmp = `${o.output}.partial-${process.pid}`;
  try {
    await writeFile(tmp, lines.length ? `${lines.join('\n')}\n` : '');
    await rename(tmp, o.output);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
  if (loaded.badRows.length) progress.log(`skipped ${loaded.badRows.length} malformed rows`);
  return lines.length;
}

export const REWARD_TRAIN_OPTIONS = optionsFromSchema(RewardConfigSchema, DPO_ONLY_KEYS);

export const REWARD_SCORE_OPTIONS: readonly OptionSpec[] = [
  { key: 'model', kind: 'string', arg: 'path', description: 'reward model: a sequence-classification folder (dpo reward train output) or hub id' },
  { key: 'data', kind: 'string', arg: 'path', description: 'prompt/completion (or text, messages) rows, or preference rows (every completion is scored)' },
  { key: 'output', kind: 'string', arg: 'file', description: 'JSONL output: one line per row, in input order' },
  { key: 'format', kind: 'string', arg: 'name', choices: ['auto', ...SFT_FORMATS, ...PREFERENCE_FORMATS], defaultText: 'auto', description: 'data layout (detected by default)' },
  { key: 'batchSize', kind: 'integer', defaultText: '8', description: 'rows per forward pass' },
  { key: 'maxLength', kind: 'integer', defaultText: '1024', description: 'max tokens of prompt + completion (longer rows are truncated as in training)' },
  { key: 'onBadRow', kind: 'string', arg: 'action', choices: ['error', 'skip'], defaultText: 'error', description: 'malformed rows: stop, or skip and report them' },
  ...RUNTIME_OPTIONS,
];

const ScoreSchema = z
  .object({
    model: z.string().min(1),
    data: z.string().min(1),
    output: z.string().min(1),
    format: z.string().default('auto'),
    batchSize: z.number().int().positive().default(8),
    maxLength: z.number().int().positive().default(1024),
    onBadRow: z.enum(['error', 'skip']).default('error'),
    threads: z.number().int().positive().optional(),
    device: z.enum(['cpu', 'cuda']).default('cpu'),
  })
  .strict();

const TRAIN_EXAMPLES = `
Examples:
  # A reward model from an SFT model, with held-out accuracy
  $ dpo reward train --model runs/gpt2-sft --data prefs.jsonl --eval-data heldout.jsonl --output runs/rm

  # LoRA on the body (the head is always trained; the saved model has the adapters merged)
  $ dpo reward train --model ./gpt2 --data prefs.jsonl --output runs/rm-lora --lora-r 16

The model is a scalar head score.weight [1, hidden] (no bias) on the last non-padding token,
trained with -log sigmoid(r(x,y_w) - r(x,y_l)). Rankings (prompt + completions, best first) are
trained on all ordered pairs of each row. Saved in the Hugging Face layout of a
*ForSequenceClassification model (num_labels 1). Rewards are shifted to mean 0 over the
training completions: score.weight has no bias, so the shift is stored in config.json as
reward_offset (normalised reward = raw score - reward_offset), which 'dpo reward score' applies.
Metrics: loss, accuracy, margin, mean_reward (+ eval_*) in <output>/metrics.jsonl.`;

const SCORE_EXAMPLES = `
Examples:
  $ dpo reward score --model runs/rm --data samples.jsonl --output rewards.jsonl
  $ dpo reward score --model runs/rm --data prefs.jsonl --output pair-rewards.jsonl

Each output line holds the row's line number, prompt, completion(s) and reward: "reward" for
prompt/completion rows, "rewards" (best first) for preference rows. Rewards are normalised
(raw score minus the model's reward_offset).`;

export function register(program: Command, ctx: CliContext): void {
  const reward = program.command('reward').description('reward models: train one on preference data (Bradley-Terry), score completions with one');

  registerTrainerCommand(reward, ctx, {
    name: 'train',
    label: 'reward train',
    description: 'train a reward model (scalar head on the last token, Bradley-Terry loss) on preference data',
    config: REWARD_CONFIG,
    options: REWARD_TRAIN_OPTIONS,
    configFiles: 'rm.yaml or rm.json',
    examples: TRAIN_EXAMPLES,
    run: async (config, progress, signal) => {
      const r = await new RewardTrainer(config, { progress, signal }).train();
      return { ...r, extra: r.rewardOffset !== undefined ? { reward_offset: r.rewardOffset } : {} };
    },
  });

  const score = reward.command('score').description('score rows with a reward model: one JSON line per row, in input order');
  addOptions(score, REWARD_SCORE_OPTIONS);
  score.addHelpText('after', SCORE_EXAMPLES).action(async (opts: Record<string, unknown>) => {
    const fromFlags = valuesFromFlags(opts, REWARD_SCORE_OPTIONS);
    const o = validateConfig(ScoreSchema, fromFlags, fromFlags, REWARD_SCORE_OPTIONS, undefined);
    const rows = await scoreRewards({ ...o, progress: ctx.progress() });
    printJson(ctx, { output: o.output, rows });
  });
}
