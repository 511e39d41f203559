/** What data preparation reports: the one line about kept, dropped and cut rows, and the skipped rows. */
import { BAD_ROW_LIST_CAP, formatBadRow } from '../../data/bad-rows.js';
import type { TokenizeStats } from '../../data/tokenize.js';
import type { BadRow } from '../../data/types.js';
import type { ProgressReporter } from '../../progress.js';

/** Logs {@link describeData}, then every skipped malformed row (up to a cap) as `file:line: reason`. */
export function reportPreparedData(progress: ProgressReporter, label: string, data: { stats: TokenizeStats; badRows: readonly BadRow[] }, maxLength: number): void {
  progress.log(describeData(label, data.stats, maxLength));
  for (const row of data.badRows.slice(0, BAD_ROW_LIST_CAP)) progress.log(`  skipped ${formatBadRow(row)}`);
  if (data.badRows.length > BAD_ROW_LIST_CAP) progress.log(`  and ${data.badRows.length - BAD_ROW_LIST_CAP} more skipped`);
}

/** One line about what data preparation kept, dropped and cut. */
export function describeData(label: string, s: TokenizeStats, maxLength: number): string {
  const notes = [
    s.skippedBad && `${s.skippedBad} malformed rows skipped`,
    s.droppedTooLong && `${s.droppedTooLong} rows dropped (prompt fills max-length ${maxLength})`,
    s.truncated && describeTruncation(s, maxLength),
    s.identicalAfterTruncation && `warning: ${s.identicalAfterTruncation} rows whose completions are identical after truncation (no preference signal; raise max-length / max-completion-length)`,
    s.promptNotPrefix && `${s.promptNotPrefix} rows whose prompt tokens are not a prefix of prompt+completion`,
  ].filter(Boolean);
  return `${label} data: ${s.rows} rows, ${s.totalTokens} tokens${notes.length ? `; ${notes.join('; ')}` : ''}`;
}

const LIMIT_FLAGS = { maxPromptLength: 'max-prompt-length', maxCompletionLength: 'max-completion-length', maxLength: 'max-length' } as const;

/** "4 rows truncated to max-length 128", or which limits cut how many rows when others did too. */
function describeTruncation(s: TokenizeStats, maxLength: number): string {
  const by = Object.entries(s.truncatedBy ?? {}) as [keyof typeof LIMIT_FLAGS, { rows: number; limit: number }][];
  if (by.length === 0 || (by.length === 1 && by[0][0] === 'maxLength')) return `${s.truncated} rows truncated to max-length ${maxLength}`;
  if (by.length === 1) return `${s.truncated} rows truncated to ${LIMIT_FLAGS[by[0][0]]} ${by[0][1].limit}`;
  return `${s.truncated} rows truncated (${by.map(([k, v]) => `${v.rows} to ${LIMIT_FLAGS[k]} ${v.limit}`).join(', ')})`;
}
