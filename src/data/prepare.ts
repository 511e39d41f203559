import type { TextTokenizer } from '../io/tokenizer-types.js';
import { loadPreferenceData, loadSftData, type LoadedFile, type LoadOptions } from './load.js';
import { tokenizePreferences, tokenizeSft, type TokenizedData, type TokenizeOptions } from './tokenize.js';
import type { BadRow, PreferenceFormat, SftFormat } from './types.js';
import type { DataSource } from './read.js';

/** Options of {@link preparePreferenceData}: loading plus tokenization. */
export type PrepareOptions<F extends string> = Omit<LoadOptions<F>, 'tokenizer'> & TokenizeOptions;

/** Tokenized rows, stats (with `skippedBad` filled in), the skipped rows and per-file formats. */
export interface PreparedData<F extends string> extends TokenizedData {
  badRows: BadRow[];
  files: LoadedFile<F>[];
}

/** File(s) -> validated examples -> token ids: everything a trainer needs before batching. */
export async function preparePreferenceData(
  path: DataSource,
  tokenizer: TextTokenizer,
  options: PrepareOptions<PreferenceFormat> = {},
): Promise<PreparedData<PreferenceFormat>> {
  const loaded = await loadPreferenceData(path, { ...options, tokenizer });
  const { rows, stats } = tokenizePreferences(loaded.examples, tokenizer, options);
  return { rows, stats: { ...stats, skippedBad: loaded.badRows.length }, badRows: loaded.badRows, files: loaded.files };
}

/** SFT version of {@link preparePreferenceData}. */
export async function prepareSftData(
  path: DataSource,
  tokenizer: TextTokenizer,
  options: PrepareOptions<SftFormat> = {},
): Promise<PreparedData<SftFormat>> {
  const loaded = await loadSftData(path, { ...options, tokenizer });
  const { rows, stats } = tokenizeSft(loaded.examples, tokenizer, options);
  return { rows, stats: { ...stats, skippedBad: loaded.badRows.length }, badRows: loaded.badRows, files: loaded.files };
}
