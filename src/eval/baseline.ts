/**
 * Baseline completions from a file, matched to the evaluation prompts by prompt.
 *
 * Rows: `{"prompt": ..., "completion": "..."}`, `{"prompt": ..., "completions": ["...", ...]}`
 * (the output of `dpo generate`), or preference rows `{"prompt": ..., "chosen": ...}` (the
 * dataset's preferred response, the paper's HH baseline). The prompt is a string or a list of
 * messages, compared exactly as the prompts file gives it; a completion given as messages is the
 * content of its last (assistant) message. Rows with the same prompt add their completions in
 * file order. Read and validated like every data file: bad rows are reported as file:line: reason.
 */
import { badRowsError } from '../data/bad-rows.js';
import { asMessages, asRecord, hasField, typeName } from '../data/fields.js';
import { readDataPath } from '../data/read.js';
import { RowProblem } from '../data/row-problem.js';
import type { BadRow, ChatMessage, OnBadRow, RowOrigin } from '../data/types.js';
import { DpoError } from '../errors.js';

/** The key a prompt is matched by: the string itself, or the messages' JSON. */
export function promptKey(prompt: string | readonly ChatMessage[]): string {
  return typeof prompt === 'string' ? `s:${prompt}` : `m:${JSON.stringify(prompt.map((m) => [m.role, m.content]))}`;
}

function completionText(value: unknown, field: string): string {
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) {
    const messages = asMessages(value, field);
    const last = messages[messages.length - 1];
    if (last.role !== 'assistant') throw new RowProblem(`field '${field}' is a conversation that does not end with an assistant message`);
    return last.content;
  }
  throw new RowProblem(`field '${field}' must be a string (or messages ending with the assistant's), got ${typeName(value)}`);
}

/** One row's prompt and completions; throws RowProblem for malformed rows. */
export function toBaselineRow(value: unknown): { prompt: string | ChatMessage[]; completions: string[] } {
  const row = asRecord(value);
  if (!hasField(row, 'prompt')) throw new RowProblem(`expected a 'prompt' field, found ${Object.keys(row).map((k) => `'${k}'`).join(', ') || 'no fields'}`);
  const p = row.prompt;
  const prompt = typeof p === 'string' ? p : Array.isArray(p) ? asMessages(p, 'prompt') : undefined;
  if (prompt === undefined) throw new RowProblem(`field 'prompt' must be a string or a list of messages, got ${typeName(p)}`);
  let completions: string[];
  if (hasField(row, 'completion')) completions = [completionText(row.completion, 'completion')];
  else if (hasField(row, 'completions')) {
    const c = row.completions;
    if (!Array.isArray(c) || c.length === 0) throw new RowProblem(`field 'completions' must be a non-empty list, got ${typeName(c)}`);
    completions = c.map((x, i) => completionText(x, `completions[${i}]`));
  } else if (hasField(row, 'chosen')) completions = [completionText(row.chosen, 'chosen')];
  else throw new RowProblem(`expected a 'completion', 'completions' or 'chosen' field next to 'prompt'`);
  return { prompt, completions };
}

export interface BaselineFile {
  /** Completions by {@link promptKey}, in file order. */
  byPrompt: Map<string, string[]>;
  rows: number;
  skipped: BadRow[];
}

/** Reads a baseline file or folder (JSONL/JSON/Parquet). */
export async function loadBaselineFile(path: string, options: { onBadRow?: OnBadRow } = {}): Promise<BaselineFile> {
  const byPrompt = new Map<string, string[]>();
  const bad: BadRow[] = [];
  let rows = 0;
  for (const file of await readDataPath(path)) {
    bad.push(...file.bad);
    for (const raw of file.rows) {
      try {
        const r = toBaselineRow(raw.value);
        const key = promptKey(r.prompt);
        byPrompt.set(key, [...(byPrompt.get(key) ?? []), ...r.completions]);
        rows++;
      } catch (err) {
        if (!(err instanceof RowProblem)) throw err;
        bad.push({ file: raw.origin.file, line: raw.origin.line, reason: err.message });
      }
    }
  }
  bad.sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : a.line - b.line));
  if (bad.length > 0 && (options.onBadRow ?? 'error') === 'error') throw badRowsError(bad);
  return { byPrompt, rows, skipped: bad };
}

/**
 * Per prompt, the baseline completions; a prompt without any is a DpoError naming where the
 * prompt is (file:line) — every evaluated prompt needs a baseline.
 */
export function matchBaselines(baseline: BaselineFile, prompts: readonly { prompt: string | ChatMessage[]; origin: RowOrigin }[], baselinePath: string): string[][] {
  const missing: RowOrigin[] = [];
  const out = prompts.map((p) => {
    const c = baseline.byPrompt.get(promptKey(p.prompt));
    if (!c) missing.push(p.origin);
    return c ?? [];
  });
  if (missing.length > 0) {
    const shown = missing.slice(0, 5).map((o) => `${o.file}:${o.line}`).join(', ');
    const more = missing.length > 5 ? ` and ${missing.length - 5} more` : '';
    throw new DpoError(`${baselinePath}: no baseline completion for ${missing.length} prompt${missing.length > 1 ? 's' : ''} (${shown}${more}); the baseline file needs a row with the same 'prompt' for every prompt`);
  }
  return out;
}
