import type { ChatMessage } from '../io/tokenizer-types.js';

/**
 * Where a row came from, for error messages and debugging.
 * `line` is the 1-based line number for JSONL files and the 0-based row index for JSON arrays and
 * Parquet files (the number `datasets` would give the row).
 */
export interface RowOrigin {
  file: string;
  line: number;
}

/** A row that could not be used, with the reason. Rendered as `file:line: reason`. */
export interface BadRow {
  file: string;
  line: number;
  reason: string;
}

/** What to do with malformed rows: throw one DpoError listing them, or skip them and report them. */
export type OnBadRow = 'error' | 'skip';

/**
 * One preference row, as text. `completions` is ordered best first: a pair is
 * `[chosen, rejected]`; a ranking has K >= 2 completions. `prompt + completions[k]` is the full
 * text the model scores.
 */
export interface PreferenceExample {
  prompt: string;
  completions: string[];
  origin: RowOrigin;
  /**
   * True when every completion already ends with the chat template's end-of-turn token
   * (conversational rows): tokenization then appends no EOS.
   */
  endsWithEndOfTurn?: boolean;
}

/**
 * One SFT row, as text. Loss is taken on `completion` only; `prompt` is context. Plain `text`
 * rows have an empty prompt, so every token is trained on (as TRL's SFTTrainer does).
 */
export interface SftExample {
  prompt: string;
  completion: string;
  origin: RowOrigin;
  /** As {@link PreferenceExample.endsWithEndOfTurn}. */
  endsWithEndOfTurn?: boolean;
}

/**
 * Preference file layouts (auto-detected per file, or forced with the `format` option):
 * - `prompt_chosen_rejected`: `prompt`, `chosen`, `rejected` strings (TRL "standard, explicit prompt").
 * - `chosen_rejected`: `chosen`, `rejected` strings sharing their beginning; the prompt is their
 *   common prefix (TRL's `extract_prompt`, see {@link extractPromptText}).
 * - `conversational`: `chosen`/`rejected` (and optionally `prompt`) are lists of `{role, content}`
 *   messages, rendered with the tokenizer's chat template (TRL's `maybe_apply_chat_template`).
 * - `anthropic_hh`: `chosen`/`rejected` are raw Anthropic HH transcripts
 *   (`\n\nHuman: ... \n\nAssistant: ...`); the prompt runs up to and including the last shared
 *   `\n\nAssistant:`.
 * - `ranking`: `prompt` plus `completions`, an array of >= 2 completions, best first (strings, or
 *   message lists when the prompt is a message list).
 */
export type PreferenceFormat =
  | 'prompt_chosen_rejected'
  | 'chosen_rejected'
  | 'conversational'
  | 'anthropic_hh'
  | 'ranking';

/**
 * SFT file layouts: `text` (one string, trained on entirely), `prompt_completion` (`prompt` and
 * `completion` strings or message lists; loss on the completion), `messages` (a conversation
 * rendered with the chat template).
 */
export type SftFormat = 'text' | 'prompt_completion' | 'messages';

/** A raw value read from a file, before any format is applied. */
export interface RawRow {
  value: unknown;
  origin: RowOrigin;
}

export type { ChatMessage };
