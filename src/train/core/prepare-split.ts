/** Preparing a preference data path for a trainer: read, validate, tokenize, report. */
import { preparePreferenceData } from '../../data/prepare.js';
import type { TokenizedPreference } from '../../data/tokenize.js';
import type { PreferenceFormat } from '../../data/types.js';
import { DpoError } from '../../errors.js';
import type { TextTokenizer } from '../../io/tokenizer-types.js';
import { reportPreparedData } from './data-report.js';
import type { ProgressReporter } from '../../progress.js';
import { dataSourceName, type DataSource } from '../../data/read.js';

/** The data options every trainer config shares. */
export interface DataOptions {
  format: string;
  onBadRow: 'error' | 'skip';
  maxLength: number;
  maxPromptLength?: number;
  maxCompletionLength?: number;
  truncationMode: 'keep_start' | 'keep_end';
}

/** Tokenized rows of `path`; what was skipped or cut is reported; no usable row is an error. */
export async function preparePreferenceSplit(
  path: DataSource,
  tokenizer: TextTokenizer,
  c: DataOptions,
  progress: ProgressReporter,
  label: string,
): Promise<TokenizedPreference[]> {
  const data = await preparePreferenceData(path, tokenizer, {
    format: c.format as PreferenceFormat | 'auto',
    onBadRow: c.onBadRow,
    maxLength: c.maxLength,
    maxPromptLength: c.maxPromptLength,
    maxCompletionLength: c.maxCompletionLength,
    truncationMode: c.truncationMode,
  });
  reportPreparedData(progress, label, data, c.maxLength);
  if (data.rows.length === 0) throw new DpoError(`${dataSourceName(path)}: no usable rows`);
  return data.rows;
}
