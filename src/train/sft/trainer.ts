/**
 * SFTTrainer: supervised fine-tuning (maximum likelihood) of a causal LM, with the options,
 * defaults and metric names of TRL's SFTTrainer.
 *
 * Data (the file's kind is detected automatically, or forced with `format`):
 * - SFT files: `prompt`/`completion` rows train on the completion only (prompt tokens masked),
 *   `text` and `messages` rows on every token (the data layer's convention, as TRL's);
 * - preference files (any of the `dpo train` formats): the chosen completion of every row, as
 *   prompt/completion ("Preferred-FT", the DPO paper's baseline and its recipe for a reference
 *   model when no SFT model exists).
 *
 * Loss: mean token negative log-likelihood over every completion token of the optimizer step
 * (token-weighted, as TRL: a long completion counts more than a short one, and gradient
 * accumulation gives exactly the loss of one big batch).
 */
import { collatePreferences, type PreferenceBatch } from '../../data/collate.js';
import { loadPreferenceData } from '../../data/load.js';
import { detectPreferenceFormat, PREFERENCE_FORMATS } from '../../data/preference-format.js';
import { prepareSftData } from '../../data/prepare.js';
import { dataSourceName, readDataPath, type DataSource } from '../../data/read.js';
import { detectSftFormat, SFT_FORMATS } from '../../data/sft-format.js';
import { tokenizeSft, type TokenizedSft, type TokenizeStats } from '../../data/tokenize.js';
import type { PreferenceFormat, SftFormat } from '../../data/types.js';
import type { HostTensor } from '../../engine/runtime.js';
import type { ParamData } from '../../engine/train-step.js';
import { DpoError } from '../../errors.js';
import type { TextTokenizer } from '../../io/tokenizer-types.js';
import type { Pretrained } from '../../models/pretrained.js';
import { parseSftConfig, type SFTConfig, type SFTConfigInput } from './config.js';
import { sftLoss } from './loss.js';
import type { EvalGraph } from '../core/loop.js';
import { savePolicy } from '../core/policy.js';
import { guardedRun, loadPolicy, resumeOptions, runTrainer, TrainerBase, trainingDropout, type StopOptions, type TrainerResult } from '../core/runner.js';
import { describeData } from '../core/data-report.js';
import type { ProgressReporter } from '../../progress.js';
import { scoredFeeds } from '../../scoring/sequence-logps.js';

/** Options a resumed run must share with the run that wrote the checkpoint. */
const SFT_RESUME_KEYS = [
  'model', 'data', 'format', 'batchSize', 'gradientAccumulationSteps', 'optimizer', 'seed', 'lora', 'maxLength',
] as const satisfies readonly (keyof SFTConfig)[];

export interface SFTTrainerOptions extends StopOptions {
  /** An already loaded model (skips loading `config.model`). */
  model?: Pretrained;
  /** Progress and messages (default: a bar on a terminal, plain lines otherwise, on stderr). */
  progress?: ProgressReporter;
}

export type { TrainerResult } from '../core/runner.js';

/** What kind of file an SFT run reads. */
export type SftDataKind = 'sft' | 'preference';

/** A tokenized SFT split: one completion per row. */
export interface SftSplit {
  kind: SftDataKind;
  rows: TokenizedSft[];
  stats: TokenizeStats;
}

/**
 * Tells SFT files from preference files by the fields of the first row that fits either
 * (preference fields first: `chosen`/`rejected` or `completions`).
 */
export async function detectSftDataKind(path: DataSource, format = 'auto'): Promise<SftDataKind> {
  if ((SFT_FORMATS as readonly string[]).includes(format)) return 'sft';
  if ((PREFERENCE_FORMATS as readonly string[]).includes(format)) return 'preference';
  for (const file of await readDataPath(path)) {
    for (const { value } of file.rows) {
      if (detectPreferenceFormat(value)) return 'preference';
      if (detectSftFormat(value)) return 'sft';
    }
  }
  throw new DpoError(`${dataSourceName(path)}: cannot tell the data format (expected SFT rows: text, prompt/completion or messages; or preference rows: prompt/chosen/rejected, chosen/rejected or prompt/completions)`);
}

export interface SftPrepareOptions {
  format?: string;
  onBadRow?: 'error' | 'skip';
  maxLength?: number;
  maxPromptLength?: number;
  maxCompletionLength?: number;
  truncationMode?: 'keep_start' | 'keep_end';
}

/** Reads, validates and tokenizes SFT data, or the chosen completions of preference data. */
export async function prepareSftSplit(path: DataSource, tokenizer: TextTokenizer, o: SftPrepareOptions = {}): Promise<SftSplit> {
  const format = o.format ?? 'auto';
  const kind = await detectSftDataKind(path, format);
  const limits = { maxLength: o.maxLength, maxPromptLength: o.maxPromptLength, maxCompletionLength: o.maxCompletionLength, truncationMode: o.truncationMode };
  if (kind === 'sft') {
    const data = await prepareSftData(path, tokenizer, { format: format as SftFormat | 'auto', onBadRow: o.onBadRow, ...limits });
    return { kind, rows: data.rows, stats: data.stats };
  }
  const loaded = await loadPreferenceData(path, { format: format as PreferenceFormat | 'auto', onBadRow: o.onBadRow, tokenizer });
  const examples = loaded.examples.map((e) => ({ prompt: e.prompt, completion: e.completions[0], origin: e.origin }));
  const { rows, stats } = tokenizeSft(examples, tokenizer, limits);
  return { kind, rows, stats: { ...stats, skippedBad: loaded.badRows.length } };
}

function batchFeeds(batch: PreferenceBatch, scale: number, packed: boolean): Record<string, HostTensor> {
  return { ...scoredFeeds(batch, { packed }), loss_scale: { data: Float32Array.of(scale), dims: [] } };
}

function scoredTokens(batch: PreferenceBatch): number {
  return batch.completionLengths.reduce((s, v) => s + v, 0);
}

export class SFTTrainer extends TrainerBase<SFTConfig> {
  constructor(config: SFTConfigInput | SFTConfig, private readonly options: SFTTrainerOptions = {}) {
    super(parseSftConfig(config), options);
  }

  /** Trains; --output is checked and locked before any work. */
  async train(): Promise<TrainerResult> {
    return guardedRun(this.config, 'dpo sft', resumeOptions(this.config, SFT_RESUME_KEYS, 'sft'), this.progress, [], (digest) => this.trainLocked(digest));
  }

  private async trainLocked(digest: string): Promise<TrainerResult> {
    const c = this.config;
    const { pretrained, tokenizer, policy, maxLength } = await loadPolicy(c, this.progress, this.options.model);
    const train = await this.prepare(c.data, tokenizer, 'train', maxLength);
    const evalSplit = c.evalData ? await this.prepare(c.evalData, tokenizer, 'eval', maxLength) : undefined;
    const dropout = trainingDropout(c);
    let correct = 0;
    let count = 0;
    return runTrainer({
      config: c,
      progress: this.progress,
      params: policy,
      loss: (g, weights) => sftLoss(g, policy.model, weights, dropout, { packed: c.paddingFree }),
      rows: train.rows,
      padTokenId: tokenizer.padTokenId,
      digest,
      stopRequested: () => this.stop.stopped,
      hooks: ({ evalGraph }) => ({
        feeds: (batches) => {
          const total = batches.reduce((s, b) => s + scoredTokens(b), 0);
          return batches.map((b) => batchFeeds(b, batches.length / Math.max(total, 1), c.paddingFree));
        },
        record: (batch, o) => {
          correct += Number(o.correct.data[0]);
          count += scoredTokens(batch);
        },
        flush: () => {
          const m = { mean_token_accuracy: correct / Math.max(count, 1) };
          correct = count = 0;
          return m;
        },
        evaluate: evalSplit ? async (params) => this.evaluateSplit(evalSplit, await evalGraph(), params, tokenizer.padTokenId) : undefined,
        saveFinal: async (params) => {
          await savePolicy(c.output, c.model, pretrained, policy, params, c);
          this.progress.log(`saved the model to ${c.output}`);
        },
        progressInfo: (m, loss) => ({ loss: m.loss ?? loss, acc: m.mean_token_accuracy ?? 0 }),
      }),
    });
  }

  private async prepare(path: DataSource, tokenizer: TextTokenizer, split: string, maxLength: number): Promise<SftSplit> {
    const c = { ...this.config, maxLength };
    const data = await prepareSftSplit(path, tokenizer, {
      format: c.format,
      onBadRow: c.onBadRow,
      maxLength: c.maxLength,
      maxPromptLength: c.maxPromptLength,
      maxCompletionLength: c.maxCompletionLength,
      truncationMode: c.truncationMode,
    });
    const what = data.kind === 'preference' ? ' (preference file: training on the chosen completions)' : '';
    this.progress.log(`${describeData(split, data.stats, c.maxLength)}${what}`);
    if (data.rows.length === 0) throw new DpoError(`${dataSourceName(path)}: no usable rows`);
    return data;
  }

  private async evaluateSplit(split: SftSplit, graph: EvalGraph, params: ReadonlyMap<string, ParamData>, padTokenId: number): Promise<Record<string, number>> {
    const bs = this.config.batchSize;
    let nll = 0;
    let correct = 0;
    let count = 0;
    this.progress.start('eval', split.rows.length);
    for (let start = 0; start < split.rows.length; start += bs) {
      const batch = collatePreferences(split.rows.slice(start, start + bs), { padTokenId, padToMultipleOf: this.config.padToMultipleOf });
      const out = await graph.run(batchFeeds(batch, 1, this.config.paddingFree), params);
      nll += Number(out.nll_sum.data[0]);
      correct += Number(out.correct.data[0]);
      count += scoredTokens(batch);
      this.progress.update(Math.min(start + bs, split.rows.length));
    }
    this.progress.stop();
    return { eval_loss: nll / Math.max(count, 1), eval_mean_token_accuracy: correct / Math.max(count, 1) };
  }
}
