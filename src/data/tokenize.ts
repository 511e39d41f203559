import type { TextTokenizer } from '../io/tokenizer-types.js';
import { DpoError } from '../errors.js';
import { truncateRow, type TruncationLimit, type TruncationOptions } from './truncate.js';
import type { PreferenceExample, RowOrigin, SftExample } from './types.js';

/**
 * One row as token ids. `completionIds` is best first (one entry for SFT); each completion ends
 * with EOS unless truncation cut it. The model sees `promptIds ++ completionIds[k]`.
 */
export interface TokenizedPreference {
  promptIds: number[];
  completionIds: number[][];
  origin: RowOrigin;
}

/** An SFT row as token ids: a TokenizedPreference with exactly one completion. */
export type TokenizedSft = TokenizedPreference;

/** Options of {@link tokenizePreferences} / {@link tokenizeSft}. */
export interface TokenizeOptions extends TruncationOptions {
  /**
   * Prepend the tokenizer's BOS to every prompt (skipped when the prompt's ids already start with
   * it, e.g. a chat template that writes `<|begin_of_text|>`). Default: true exactly when the
   * tokenizer has a `bosTokenId` (models such as Llama that expect one).
   */
  addBos?: boolean;
}

/** Counts from tokenization; every row that went in is accounted for. */
export interface TokenizeStats {
  /** Rows kept. */
  rows: number;
  /** Rows dropped because no completion token fits in maxLength (keep_start with a prompt that fills it). */
  droppedTooLong: number;
  /**
   * Rows where encode(prompt) is not a prefix of encode(prompt + completion) for some completion
   * (their prompt ids were cut back to the shared prefix; see {@link tokenizePreferences}).
   */
  promptNotPrefix: number;
  /** Kept rows that lost tokens to maxLength / maxPromptLength / maxCompletionLength. */
  truncated: number;
  /** Of those, the rows each limit cut, with the limit's value (a row may count under several). */
  truncatedBy?: Partial<Record<TruncationLimit, { rows: number; limit: number }>>;
  /**
   * Kept rows whose completions differed but became identical token ids after truncation (they
   * carry no preference signal: a longer maxLength / maxCompletionLength keeps it).
   */
  identicalAfterTruncation: number;
  /** Malformed rows skipped while loading (0 when tokenizing examples directly). */
  skippedBad: number;
  /** Tokens the model will read: the sum over kept rows and completions of prompt + completion length. */
  totalTokens: number;
}

/** Tokenized rows and their stats. */
export interface TokenizedData {
  rows: TokenizedPreference[];
  stats: TokenizeStats;
}

/**
 * Tokenizes preference examples as the DPO issue specifies (TRL's `build_tokenized_answer`
 * convention): prompt ids = [BOS] + encode(prompt); the ids of completion k are those of
 * encode(prompt + completion_k) after the prompt's ids, plus EOS. Tokenizing the whole text keeps
 * merges across the prompt/completion boundary the way the model sees them at inference.
 *
 * Conversational rows (`endsWithEndOfTurn`) get no EOS: their completions already end with the
 * chat template's end-of-turn token, so prompt + completion is exactly the template's ids. BOS is
 * added once: not when the text already starts with it (templates that write `bos_token`); when
 * the prompt is empty and the text starts with BOS (a whole rendered conversation), that BOS
 * becomes the prompt, so it is context rather than a duplicated or trained-on token.
 *
 * When encode(prompt) is not a prefix of encode(prompt + completion) (a merge crossed the
 * boundary, e.g. a prompt ending in a space), the row is counted in `promptNotPrefix` and the
 * prompt is cut back to the ids that all of the row's full encodings share, so every sequence is
 * still exactly encode(prompt + completion_k): nothing is duplicated or lost. TRL does the same
 * per sequence (it steps its split back one token); here the prompt stays shared by the row's
 * sequences. Rows where the prefix holds (the usual case) are unaffected.
 * Truncation follows {@link truncateRow}.
 */
export function tokenizePreferences(
  examples: readonly PreferenceExample[],
  tokenizer: TextTokenizer,
  options: TokenizeOptions = {},
): TokenizedData {
  checkOptions(options);
  const addBos = options.addBos ?? tokenizer.bosTokenId !== undefined;
  if (addBos && tokenizer.bosTokenId === undefined) throw new DpoError('addBos is set but the tokenizer has no BOS token');
  const bos = addBos ? (tokenizer.bosTokenId as number) : undefined;
  const stats: TokenizeStats = { rows: 0, droppedTooLong: 0, promptNotPrefix: 0, truncated: 0, identicalAfterTruncation: 0, skippedBad: 0, totalTokens: 0 };
  const rows: TokenizedPreference[] = [];
  for (const example of examples) {
    const encodedPrompt = tokenizer.encode(example.prompt);
    const full = example.completions.map((completion) => tokenizer.encode(example.prompt + completion));
    const textHasBos = bos !== undefined && full.every((ids) => ids[0] === bos);
    let shared = full.reduce((n, ids) => Math.min(n, commonPrefixLength(ids, encodedPrompt)), encodedPrompt.length);
    if (shared < encodedPrompt.length) stats.promptNotPrefix++;
    if (textHasBos && shared === 0) shared = 1;
    const eos = example.endsWithEndOfTurn ? [] : [tokenizer.eosTokenId];
    const completions = full.map((ids) => [...ids.slice(shared), ...eos]);
    const promptText = full[0].slice(0, shared);
    const promptIds = bos !== undefined && !textHasBos ? [bos, ...promptText] : promptText;
    const fitted = truncateRow(promptIds, completions, options, bos !== undefined && promptIds[0] === bos);
    if (fitted === undefined) {
      stats.droppedTooLong++;
      continue;
    }
    if (fitted.truncated) stats.truncated++;
    for (const limit of fitted.cutBy) {
      const by = (stats.truncatedBy ??= {});
      (by[limit] ??= { rows: 0, limit: options[limit] as number }).rows++;
    }
    if (fitted.truncated && hasIdenticalPair(fitted.completionIds) && !hasIdenticalPair(completions)) stats.identicalAfterTruncation++;
    stats.rows++;
    for (const c of fitted.completionIds) stats.totalTokens += fitted.promptIds.length + c.length;
    rows.push({ promptIds: fitted.promptIds, completionIds: fitted.completionIds, origin: example.origin });
  }
  return { rows, stats };
}

/**
 * Tokenizes SFT examples the same way (one completion each; `text` rows have an empty prompt, so
 * the ids are [BOS] + encode(text) + EOS with every text token trained on).
 */
export function tokenizeSft(examples: readonly SftExample[], tokenizer: TextTokenizer, options: TokenizeOptions = {}): TokenizedData {
  return tokenizePreferences(
    examples.map((e) => ({ prompt: e.prompt, completions: [e.completion], origin: e.origin, endsWithEndOfTurn: e.endsWithEndOfTurn })),
    tokenizer,
    options,
  );
}

function hasIdenticalPair(completions: readonly (readonly number[])[]): boolean {
  const seen = new Set(completions.map((c) => c.join(',')));
  return seen.size < completions.length;
}

function commonPrefixLength(a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

function checkOptions(o: TokenizeOptions): void {
  for (const key of ['maxLength', 'maxPromptLength', 'maxCompletionLength'] as const) {
    const v = o[key];
    if (v !== undefined && (!Number.isInteger(v) || v < 1)) throw new DpoError(`${key} must be a positive integer, got ${v}`);
  }
  if (o.truncationMode !== undefined && o.truncationMode !== 'keep_start' && o.truncationMode !== 'keep_end') {
    throw new DpoError(`truncationMode must be 'keep_start' or 'keep_end', got '${String(o.truncationMode)}'`);
  }
}
