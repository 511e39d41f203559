/**
 * The data layer: file -> rows -> validated examples -> token ids -> batches.
 * Read {@link preparePreferenceData} then {@link PreferenceBatcher} for the whole path.
 */
export type {
  BadRow,
  ChatMessage,
  OnBadRow,
  PreferenceExample,
  PreferenceFormat,
  RawRow,
  RowOrigin,
  SftExample,
  SftFormat,
} from './types.js';
export { dataSourceName, inMemoryRows, listDataFiles, readDataFile, readDataPath, type DataSource, type FileRows } from './read.js';
export { readParquetRows } from './parquet.js';
export { detectPreferenceFormat, PREFERENCE_FORMATS, toPreferenceExample } from './preference-format.js';
export { detectSftFormat, SFT_FORMATS, toSftExample } from './sft-format.js';
export { detectKtoFormat, KTO_FORMATS, toKtoExamples, type KtoExample, type KtoFormat } from './kto-format.js';
export { extractPromptMessages, extractPromptText, splitAnthropicHh } from './prompt.js';
export { renderConversation } from './chat.js';
export { RowProblem } from './row-problem.js';
export { BAD_ROW_LIST_CAP, badRowsError, formatBadRow } from './bad-rows.js';
export {
  loadPreferenceData,
  loadSftData,
  loadKtoData,
  preferenceExamplesFromRows,
  sftExamplesFromRows,
  type LoadedData,
  type LoadedFile,
  type LoadOptions,
} from './load.js';
export {
  tokenizePreferences,
  tokenizeSft,
  type TokenizedData,
  type TokenizedPreference,
  type TokenizedSft,
  type TokenizeOptions,
  type TokenizeStats,
} from './tokenize.js';
export { truncateRow, type TruncatedRow, type TruncationOptions } from './truncate.js';
export { preparePreferenceData, prepareSftData, type PreparedData, type PrepareOptions } from './prepare.js';
export { collatePreferences, type CollateOptions, type PreferenceBatch } from './collate.js';
export { epochBatches, type OrderOptions } from './order.js';
export { PreferenceBatcher, type BatcherOptions, type BatcherState } from './batcher.js';
export { deriveSeed, Rng } from './rng.js';
