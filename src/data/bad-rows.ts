import { DpoError, printable } from '../errors.js';
import type { BadRow } from './types.js';

/** How many bad rows an error message lists before summarising the rest. */
export const BAD_ROW_LIST_CAP = 20;

/** `file:line: reason`. */
export function formatBadRow(row: BadRow): string {
  return printable(`${row.file}:${row.line}: ${row.reason}`);
}

/**
 * One DpoError naming every bad row (up to {@link BAD_ROW_LIST_CAP}, then "and N more"): the
 * first line summarises, so a CLI printing one line still says what happened.
 */
export function badRowsError(rows: readonly BadRow[]): DpoError {
  const shown = rows.slice(0, BAD_ROW_LIST_CAP).map((r) => `  ${formatBadRow(r)}`);
  if (rows.length > BAD_ROW_LIST_CAP) shown.push(`  and ${rows.length - BAD_ROW_LIST_CAP} more`);
  const noun = rows.length === 1 ? 'row' : 'rows';
  return new DpoError(
    `${rows.length} malformed data ${noun} (fix them, or skip them with onBadRow 'skip' / --on-bad-row skip):\n${shown.join('\n')}`,
  );
}
