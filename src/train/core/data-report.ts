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
    s.truncated && `${s.truncated} rows truncated to max-length ${maxLength}`,
    s.identicalAfterTruncation && `warning: ${s.identicalAfterTruncation} rows whose completions are identical after truncation (no preference signal; raise max-length / max-completion-length)`,
    s.promptNotPrefix && `${s.promptNotPrefix} rows whose prompt tokens are not a prefix of prompt+completion`,
  ].filter(Boolean);
  return `${label} data: ${s.rows} rows, ${s.totalTokens} tokens${notes.length ? `; ${notes.join('; ')}` : ''}`;
}
