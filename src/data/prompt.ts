import type { ChatMessage } from './types.js';
import { RowProblem } from './row-problem.js';

/**
 * The index where TRL's `extract_prompt` splits two sequences: their first difference, except
 * - when one is a prefix of the other, TRL's loop ends without `break` and its index stays on the
 *   last compared element (`min(len) - 1`), so the shorter completion keeps one element;
 * - `onSpace(i)` (strings only) moves a split that falls right after a space one to the left, so
 *   the space starts the completions (`" Paris"`), as tokenizers with a leading-space vocabulary
 *   expect.
 * TRL also reads `chosen[-1]` when the very first element differs (a Python negative index); that
 * accident is not reproduced: a difference at 0 gives an empty prompt.
 */
function splitIndex(n: number, same: (i: number) => boolean, onSpace: (i: number) => boolean): number {
  let i = 0;
  while (i < n && same(i)) i++;
  if (i === n) return Math.max(0, n - 1);
  if (i > 0 && onSpace(i - 1)) return i - 1;
  return i;
}

/**
 * Splits two strings sharing their beginning into prompt and completions at the character level,
 * as TRL's `extract_prompt` does for "implicit prompt" data (no whitespace or token back-off beyond
 * the single space described in {@link splitIndex}). A split inside a UTF-16 surrogate pair moves
 * left so no character is cut in half (Python indexes code points).
 */
export function extractPromptText(chosen: string, rejected: string): { prompt: string; chosen: string; rejected: string } {
  let i = splitIndex(
    Math.min(chosen.length, rejected.length),
    (k) => chosen[k] === rejected[k],
    (k) => chosen[k] === ' ',
  );
  if (i > 0 && isHighSurrogate(chosen.charCodeAt(i - 1))) i--;
  return { prompt: chosen.slice(0, i), chosen: chosen.slice(i), rejected: rejected.slice(i) };
}

/** Message-level version of {@link extractPromptText} for conversational data without a prompt. */
export function extractPromptMessages(
  chosen: ChatMessage[],
  rejected: ChatMessage[],
): { prompt: ChatMessage[]; chosen: ChatMessage[]; rejected: ChatMessage[] } {
  const i = splitIndex(
    Math.min(chosen.length, rejected.length),
    (k) => chosen[k].role === rejected[k].role && chosen[k].content === rejected[k].content,
    () => false,
  );
  return { prompt: chosen.slice(0, i), chosen: chosen.slice(i), rejected: rejected.slice(i) };
}

const HH_ASSISTANT = '\n\nAssistant:';

/**
 * Splits Anthropic HH transcripts: the prompt is everything up to and including the last
 * `\n\nAssistant:` that both transcripts share; the completions are the rest (usually starting
 * with a space). Same result as TRL's example script (`rfind` on the chosen text) on well-formed
 * rows, but safe when a response itself contains the marker.
 */
export function splitAnthropicHh(chosen: string, rejected: string): { prompt: string; chosen: string; rejected: string } {
  let shared = 0;
  const n = Math.min(chosen.length, rejected.length);
  while (shared < n && chosen[shared] === rejected[shared]) shared++;
  const at = shared >= HH_ASSISTANT.length ? chosen.lastIndexOf(HH_ASSISTANT, shared - HH_ASSISTANT.length) : -1;
  if (at < 0) throw new RowProblem(`chosen and rejected share no '\\n\\nAssistant:' turn`);
  const end = at + HH_ASSISTANT.length;
  return { prompt: chosen.slice(0, end), chosen: chosen.slice(end), rejected: rejected.slice(end) };
}

/** True when `text` looks like an Anthropic HH transcript. */
export function looksLikeHh(text: unknown): boolean {
  return typeof text === 'string' && text.includes('\n\nHuman:') && text.includes(HH_ASSISTANT);
}

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff;
}
