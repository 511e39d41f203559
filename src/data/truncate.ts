/**
 * Length limits, in tokens. Which end is cut (TRL's `truncation_mode`):
 * - `keep_end` (default, TRL's DPO default): the prompt loses tokens from its start (after BOS, which
 *   is kept), so the completions stay whole as long as possible;
 * - `keep_start`: sequences lose tokens from their end (the completions' ends; maxPromptLength
 *   keeps the prompt's first tokens).
 */
export interface TruncationOptions {
  /** Limit on prompt + completion for every sequence. */
  maxLength?: number;
  /** Limit on the prompt (applied first). */
  maxPromptLength?: number;
  /** Limit on each completion, EOS included (applied before maxLength). */
  maxCompletionLength?: number;
  truncationMode?: 'keep_start' | 'keep_end';
}

/** A row after truncation. */
export interface TruncatedRow {
  promptIds: number[];
  completionIds: number[][];
  truncated: boolean;
  /** Which limits cut tokens from the row (for the data report). */
  cutBy: TruncationLimit[];
}

/** A length limit, as the data report names it. */
export type TruncationLimit = 'maxPromptLength' | 'maxCompletionLength' | 'maxLength';

/**
 * Applies the limits to one row, in order: maxPromptLength, maxCompletionLength, maxLength
 * (against the longest completion, so every sequence of the row shares the same prompt — TRL
 * truncates chosen and rejected independently, so with keep_end a shorter completion may see more
 * prompt there). Under maxLength:
 * - keep_start: the completions are cut to maxLength - prompt length; a row whose prompt alone
 *   fills maxLength has no completion token left and is dropped (undefined);
 * - keep_end: the prompt's start is dropped until the longest completion fits, keeping at least
 *   one prompt token (plus BOS) so the first completion token is still predicted; completions
 *   longer than that are then cut at their end. Only a maxLength too small for that drops a row.
 * `keepBos` says the prompt starts with a BOS to keep when its start is dropped.
 */
export function truncateRow(
  promptIds: number[],
  completionIds: number[][],
  options: TruncationOptions,
  keepBos: boolean,
): TruncatedRow | undefined {
  const mode = options.truncationMode ?? 'keep_end';
  const head = keepBos ? 1 : 0;
  let prompt = promptIds;
  let completions = completionIds;

  const cutBy: TruncationLimit[] = [];
  const mpl = options.maxPromptLength;
  if (mpl !== undefined && prompt.length > mpl) {
    prompt = mode === 'keep_end' ? dropPromptStart(prompt, mpl, head) : prompt.slice(0, mpl);
    cutBy.push('maxPromptLength');
  }
  const mcl = options.maxCompletionLength;
  if (mcl !== undefined && completions.some((c) => c.length > mcl)) {
    completions = completions.map((c) => (c.length > mcl ? c.slice(0, mcl) : c));
    cutBy.push('maxCompletionLength');
  }

  const max = options.maxLength;
  const longest = Math.max(...completions.map((c) => c.length));
  if (max !== undefined && prompt.length + longest > max) {
    if (mode === 'keep_end') {
      const target = Math.max(Math.min(prompt.length, head + 1), max - longest);
      if (target < prompt.length) prompt = dropPromptStart(prompt, target, head);
    } else if (prompt.length >= max) {
      return undefined;
    }
    const room = max - prompt.length;
    if (room <= 0) return undefined;
    completions = completions.map((c) => (c.length > room ? c.slice(0, room) : c));
    cutBy.push('maxLength');
  }
  const truncated = prompt.length !== promptIds.length || completions.some((c, k) => c.length !== completionIds[k].length);
  return { promptIds: prompt, completionIds: completions, truncated, cutBy };
}

/** The last `length - head` tokens of `prompt`, after its first `head` (BOS) tokens. */
function dropPromptStart(prompt: number[], length: number, head: number): number[] {
  const front = Math.min(head, length);
  return [...prompt.slice(0, front), ...prompt.slice(prompt.length - (length - front))];
}
