import type { TextTokenizer } from '../io/tokenizer-types.js';
import { DpoError } from '../errors.js';
import { badRowsError } from './bad-rows.js';
import { looksLikeMessages } from './fields.js';
import { detectPreferenceFormat, PREFERENCE_FORMATS, toPreferenceExample } from './preference-format.js';
import { inMemoryRows, readDataPath, type DataSource, type FileRows } from './read.js';
import { RowProblem } from './row-problem.js';
import { detectSftFormat, SFT_FORMATS, toSftExample } from './sft-format.js';
import { detectKtoFormat, KTO_FORMATS, toKtoExamples, type KtoExample, type KtoFormat } from './kto-format.js';
import type { BadRow, OnBadRow, PreferenceExample, PreferenceFormat, RowOrigin, SftExample, SftFormat } from './types.js';

/** Options of {@link loadPreferenceData} / {@link loadSftData}. */
export interface LoadOptions<F extends string> {
  /** Force a format for every file instead of detecting it per file from the first usable row. */
  format?: F | 'auto';
  /** Needed for conversational files (renders them with its chat template). */
  tokenizer?: TextTokenizer;
  /** Default 'error': any malformed row fails the load with a DpoError listing them. */
  onBadRow?: OnBadRow;
}

/** What was read from one file. `format` is undefined only for a file with no rows. */
export interface LoadedFile<F extends string> {
  file: string;
  format: F | undefined;
  rows: number;
  badRows: number;
}

/** The examples of a data path, in file then row order, with every row that was skipped. */
export interface LoadedData<E, F extends string> {
  examples: E[];
  badRows: BadRow[];
  files: LoadedFile<F>[];
}

/**
 * Reads preference data (a .jsonl/.json/.parquet file or a folder of them) into examples.
 * Throws a DpoError for unreadable files, for a file whose format cannot be told, and (with
 * onBadRow 'error') for malformed rows.
 */
export async function loadPreferenceData(
  path: DataSource,
  options: LoadOptions<PreferenceFormat> = {},
): Promise<LoadedData<PreferenceExample, PreferenceFormat>> {
  return load(await readDataPath(path), options, PREFERENCE_KIND);
}

/** Reads SFT data (`text`, `prompt`+`completion`, or `messages` rows); see {@link loadPreferenceData}. */
export async function loadSftData(path: DataSource, options: LoadOptions<SftFormat> = {}): Promise<LoadedData<SftExample, SftFormat>> {
  return load(await readDataPath(path), options, SFT_KIND);
}

/**
 * Reads KTO data: unpaired prompt/completion/label rows, or preference rows split into a
 * desirable (chosen) and undesirable (rejected) example each; see {@link loadPreferenceData}.
 */
export async function loadKtoData(path: DataSource, options: LoadOptions<KtoFormat> = {}): Promise<LoadedData<KtoExample, KtoFormat>> {
  const loaded = load(await readDataPath(path), options, KTO_KIND);
  return { ...loaded, examples: loaded.examples.flat() };
}

/** Converts rows already in memory (e.g. built by a script), with the same checks as files. */
export function preferenceExamplesFromRows(
  rows: readonly unknown[],
  options: LoadOptions<PreferenceFormat> & { source?: string } = {},
): LoadedData<PreferenceExample, PreferenceFormat> {
  return load([inMemoryRows(rows, options.source)], options, PREFERENCE_KIND);
}

/** Converts SFT rows already in memory; see {@link preferenceExamplesFromRows}. */
export function sftExamplesFromRows(
  rows: readonly unknown[],
  options: LoadOptions<SftFormat> & { source?: string } = {},
): LoadedData<SftExample, SftFormat> {
  return load([inMemoryRows(rows, options.source)], options, SFT_KIND);
}

interface Kind<E, F extends string> {
  noun: string;
  formats: readonly F[];
  expected: string;
  detect(value: unknown): F | undefined;
  convert(value: unknown, origin: RowOrigin, format: F, tokenizer: TextTokenizer | undefined): E;
  conversationalFields: readonly string[];
}

const PREFERENCE_KIND: Kind<PreferenceExample, PreferenceFormat> = {
  noun: 'preference',
  formats: PREFERENCE_FORMATS,
  expected: 'prompt/chosen/rejected, chosen/rejected, or prompt/completions',
  detect: detectPreferenceFormat,
  convert: toPreferenceExample,
  conversationalFields: ['prompt', 'chosen', 'rejected', 'completions'],
};

const SFT_KIND: Kind<SftExample, SftFormat> = {
  noun: 'SFT',
  formats: SFT_FORMATS,
  expected: 'text, prompt/completion, or messages',
  detect: detectSftFormat,
  convert: toSftExample,
  conversationalFields: ['prompt', 'completion', 'messages'],
};

const KTO_KIND: Kind<KtoExample[], KtoFormat> = {
  noun: 'KTO',
  formats: KTO_FORMATS,
  expected: 'prompt/completion/label, or preference pairs',
  detect: detectKtoFormat,
  convert: toKtoExamples,
  conversationalFields: ['prompt', 'completion', 'chosen', 'rejected', 'completions'],
};


function load<E, F extends string>(files: FileRows[], options: LoadOptions<F>, kind: Kind<E, F>): LoadedData<E, F> {
  const forced = options.format === undefined || options.format === 'auto' ? undefined : options.format;
  if (forced !== undefined && !kind.formats.includes(forced)) {
    throw new DpoError(`unknown ${kind.noun} format '${forced}' (expected auto, ${kind.formats.join(', ')})`);
  }
  const examples: E[] = [];
  const badRows: BadRow[] = [];
  const loaded: LoadedFile<F>[] = [];
  for (const { file, rows, bad } of files) {
    const fileBad: BadRow[] = [...bad];
    const format = forced ?? detectFileFormat(file, rows.map((r) => r.value), kind);
    if (format !== undefined) checkTemplate(file, rows.map((r) => r.value), kind, options.tokenizer);
    let good = 0;
    for (const { value, origin } of rows) {
      try {
        examples.push(kind.convert(value, origin, format as F, options.tokenizer));
        good++;
      } catch (err) {
        if (!(err instanceof RowProblem)) throw err;
        fileBad.push({ file: origin.file, line: origin.line, reason: err.message });
      }
    }
    // Invalid-JSON lines were collected before the other problems; report in file order.
    fileBad.sort((a, b) => a.line - b.line);
    badRows.push(...fileBad);
    loaded.push({ file, format, rows: good, badRows: fileBad.length });
  }
  if (badRows.length > 0 && (options.onBadRow ?? 'error') === 'error') throw badRowsError(badRows);
  return { examples, badRows, files: loaded };
}

function detectFileFormat<F extends string>(file: string, values: unknown[], kind: Kind<unknown, F>): F | undefined {
  if (values.length === 0) return undefined;
  for (const value of values) {
    const format = kind.detect(value);
    if (format !== undefined) return format;
  }
  const first = values.find((v) => typeof v === 'object' && v !== null && !Array.isArray(v));
  const fields = first ? Object.keys(first).join(', ') : 'none';
  throw new DpoError(`${file}: cannot tell the ${kind.noun} format (fields: ${fields}; expected ${kind.expected})`);
}

function checkTemplate<F extends string>(file: string, values: unknown[], kind: Kind<unknown, F>, tokenizer?: TextTokenizer): void {
  if (tokenizer?.hasChatTemplate) return;
  const conversational = values.some(
    (v) =>
      typeof v === 'object' &&
      v !== null &&
      kind.conversationalFields.some((f) => {
        const field = (v as Record<string, unknown>)[f];
        return looksLikeMessages(field) || (f === 'completions' && Array.isArray(field) && looksLikeMessages(field[0]));
      }),
  );
  if (conversational) {
    const why = tokenizer ? 'the tokenizer has no chat template' : 'no tokenizer was given';
    throw new DpoError(`${file}: conversational data needs a chat template, but ${why}`);
  }
}
