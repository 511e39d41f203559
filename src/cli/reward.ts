/**
 * `dpo reward train`: fit a reward model (Bradley-Terry) on preference data.
 * `dpo reward score`: rewards of prompt/completion rows (or of every completion of preference
 * rows) under a reward model, one JSON line per row in input order.
 */
import type { DeviceRequest } from '../engine/device.js';
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
import { detectSftDataKind } from '../train/sft/trainer.js';
import { printJson, type CliContext } from './context.js';
import { option } from '../config/option.js';
import { RuntimeOptionsSchema } from '../config/runtime.js';
import { addOptions, validateConfig, valuesFromFlags, type OptionSpec } from './options.js';
import { optionsFromSchema } from './schema-options.js';
import { registerTrainer } from './trainers.js';

export { REWARD_TRAIN_OPTIONS } from './reward-train.js';

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
  device?: DeviceRequest;
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

const ScoreSchema = z
  .object({
    model: option(z.string().min(1), 'reward model: a sequence-classification folder (dpo reward train output) or hub id', { arg: 'path' }),
    data: option(z.string().min(1), 'prompt/completion (or text, messages) rows, or preference rows (every completion is scored)', { arg: 'path' }),
    output: option(z.string().min(1), 'JSONL output: one line per row, in input order', { arg: 'file' }),
    format: option(z.enum(['auto', ...SFT_FORMATS, ...PREFERENCE_FORMATS] as [string, ...string[]]).default('auto'), 'data layout (detected by default)', { arg: 'name' }),
    batchSize: option(z.number().int().positive().default(8), 'rows per forward pass', { group: 'runtime' }),
    maxLength: option(z.number().int().positive().default(1024), 'max tokens of prompt + completion (longer rows are truncated as in training)'),
    onBadRow: option(z.enum(['error', 'skip']).default('error'), 'malformed rows: stop, or skip and report them', { arg: 'action' }),
    ...RuntimeOptionsSchema.shape,
  })
  .strict();

export const REWARD_SCORE_OPTIONS: readonly OptionSpec[] = optionsFromSchema(ScoreSchema);

const SCORE_EXAMPLES = `
Examples:
  $ dpo reward score --model runs/rm --data samples.jsonl --output rewards.jsonl
  $ dpo reward score --model runs/rm --data prefs.jsonl --output pair-rewards.jsonl

Each output line holds the row's line number, prompt, completion(s) and reward: "reward" for
prompt/completion rows, "rewards" (best first) for preference rows. Rewards are normalised
(raw score minus the model's reward_offset).`;

export function register(program: Command, ctx: CliContext): void {
  const reward = program.command('reward').description('reward models: train one on preference data (Bradley-Terry), score completions with one');

  registerTrainer(reward, ctx, 'reward train');

  const score = reward.command('score').description('score rows with a reward model: one JSON line per row, in input order');
  addOptions(score, REWARD_SCORE_OPTIONS, ScoreSchema);
  score.addHelpText('after', SCORE_EXAMPLES).action(async (opts: Record<string, unknown>) => {
    const fromFlags = valuesFromFlags(opts, REWARD_SCORE_OPTIONS);
    const o = validateConfig(ScoreSchema, fromFlags, fromFlags, REWARD_SCORE_OPTIONS, undefined);
    const rows = await scoreRewards({ ...o, progress: ctx.progress() });
    printJson(ctx, { output: o.output, rows });
  });
}
