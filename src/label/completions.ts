/**
 * Completions to label that already exist (`dpo label --completions FILE`): rows
 * `{"prompt": ..., "completions": [c1, ..., cK]}` — the rows `dpo generate` writes — with an
 * optional `"finish_reasons": ["eos" | "stop" | "length" | null, ...]` saying why each ended.
 * The prompt is a string or a conversation (a message list ending with a user or system turn);
 * a completion is a string or a one-message assistant list. Every row has the same K (2 to 9)
 * and its own prompt. Read like every other data file (JSONL/JSON/Parquet, a file or a folder).
 */
import { badRowsError, formatBadRow } from '../data/bad-rows.js';
import { asMessages, asRecord, hasField, typeName } from '../data/fields.js';
import { readDataPath } from '../data/read.js';
import { RowProblem } from '../data/row-problem.js';
import type { BadRow, OnBadRow, RowOrigin } from '../data/types.js';
import { DpoError } from '../errors.js';
import type { FinishReason } from '../generate/generator.js';
import { promptQueryText, type PromptRow } from '../generate/prompts.js';
import type { LabelCompletions } from './session.js';
import { promptKey } from './store.js';

export interface LoadedCompletions {
  prompts: PromptRow[];
  /** Parallel to `prompts`. */
  completions: LabelCompletions[];
  /** K, the same for every row. */
  numCompletions: number;
  /** Rows left out (with onBadRow 'skip'). */
  skipped: BadRow[];
}

const REASONS: readonly (FinishReason | null)[] = ['eos', 'stop', 'length', null];
const MAX_K = 9;

function completionText(value: unknown, at: string): string {
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) {
    const messages = asMessages(value, at);
    if (messages.length === 1 && messages[0].role === 'assistant') return messages[0].content;
  }
  throw new RowProblem(`${at} must be a string or a one-message assistant list, got ${Array.isArray(value) ? 'another list' : typeName(value)}`);
}

function toRow(value: unknown, origin: RowOrigin): { prompt: PromptRow; completions: LabelCompletions } {
  const row = asRecord(value);
  if (!hasField(row, 'prompt') || !hasField(row, 'completions')) {
    const found = Object.keys(row).map((k) => `'${k}'`).join(', ') || 'no fields';
    throw new RowProblem(`expected a 'prompt' and a 'completions' list, found ${found}`);
  }
  const p = row.prompt;
  let prompt: PromptRow;
  if (typeof p === 'string') prompt = { text: p, prompt: p, origin };
  else if (Array.isArray(p)) {
    const messages = asMessages(p, 'prompt');
    if (messages[messages.length - 1].role === 'assistant') throw new RowProblem('prompt ends with an assistant message; the completions answer a user (or system) turn');
    prompt = { text: promptQueryText({ prompt: messages }), prompt: messages, origin };
  } else throw new RowProblem(`field 'prompt' must be a string or a list of messages, got ${typeName(p)}`);
  const c = row.completions;
  if (!Array.isArray(c)) throw new RowProblem(`field 'completions' must be a list, got ${typeName(c)}`);
  if (c.length < 2 || c.length > MAX_K) throw new RowProblem(`'completions' has ${c.length}; expected 2 to ${MAX_K} (one key each)`);
  const texts = c.map((v, i) => completionText(v, `completions[${i}]`));
  if (!hasField(row, 'finish_reasons')) return { prompt, completions: { texts } };
  const r = row.finish_reasons;
  if (!Array.isArray(r) || r.length !== texts.length) {
    throw new RowProblem(`field 'finish_reasons' must be a list of ${texts.length} (one per completion), got ${Array.isArray(r) ? `${r.length}` : typeName(r)}`);
  }
  const bad = r.findIndex((x) => !REASONS.includes(x as FinishReason | null));
  if (bad >= 0) throw new RowProblem(`finish_reasons[${bad}] must be "eos", "stop", "length" or null, got ${JSON.stringify(r[bad])}`);
  return { prompt, completions: { texts, finishReasons: r as (FinishReason | null)[] } };
}

/**
 * Every row under `path`, in file order. Malformed rows throw one DpoError naming file:line and
 * what is wrong (one line for one bad row), or with `onBadRow: 'skip'` are left out and returned.
 */
export async function loadCompletions(path: string, options: { onBadRow?: OnBadRow } = {}): Promise<LoadedCompletions> {
  const out: LoadedCompletions = { prompts: [], completions: [], numCompletions: 0, skipped: [] };
  const bad: BadRow[] = [];
  const seen = new Map<string, RowOrigin>();
  let first: RowOrigin | undefined;
  for (const file of await readDataPath(path)) {
    bad.push(...file.bad);
    for (const raw of file.rows) {
      try {
        const row = toRow(raw.value, raw.origin);
        const k = row.completions.texts.length;
        if (first && k !== out.numCompletions) throw new RowProblem(`${k} completions, but ${first.file}:${first.line} has ${out.numCompletions}: every row needs the same number`);
        const key = promptKey(row.prompt.prompt);
        const earlier = seen.get(key);
        if (earlier) throw new RowProblem(`the same prompt as ${earlier.file}:${earlier.line}: give each prompt one row with all its completions`);
        seen.set(key, raw.origin);
        first ??= raw.origin;
        out.numCompletions = k;
        out.prompts.push(row.prompt);
        out.completions.push(row.completions);
      } catch (err) {
        if (!(err instanceof RowProblem)) throw err;
        bad.push({ file: raw.origin.file, line: raw.origin.line, reason: err.message });
      }
    }
  }
  bad.sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : a.line - b.line));
  if (bad.length > 0 && (options.onBadRow ?? 'error') === 'error') {
    throw bad.length === 1 ? new DpoError(`${formatBadRow(bad[0])} (fix it, or skip it with --on-bad-row skip)`) : badRowsError(bad);
  }
  if (out.prompts.length === 0) throw new DpoError(`${path}: no rows with completions to label`);
  out.skipped = bad;
  return out;
}
