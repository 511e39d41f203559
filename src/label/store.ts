/**
 * Where labelling decisions go. Two append-only JSONL files:
 *
 * - the output: rows `dpo train` reads, `{"prompt", "chosen", "rejected"}` for a pair or
 *   `{"prompt", "completions": [best, ..., worst]}` for a ranking of K > 2;
 * - `<output>.skipped.jsonl`: ties and skips, `{"prompt", "completions", "label": "tie"|"skip"}`,
 *   which carry no preference but must not be asked again.
 *
 * Existing files are resumed: their prompts count as done, and new rows are appended after their
 * bytes, which are never rewritten. Undo removes a row this session appended (the last one),
 * by truncating the file back to the size it had before that row, never below the size it had
 * when the session started.
 */
import { open, readFile, stat, truncate } from 'node:fs/promises';
import { DpoError } from '../errors.js';

export type DecisionFile = 'output' | 'skipped';

interface Appended {
  file: DecisionFile;
  before: number;
  after: number;
  promptKey: string;
  /** Whether the file lacked a final newline before this row (the row then began with one). */
  neededNewline: boolean;
}

/** The identity of a prompt across sessions: its value as the prompt file gives it. */
export function promptKey(prompt: unknown): string {
  return JSON.stringify(prompt);
}

/** The sidecar file of ties and skips for an output file. */
export function skippedPath(output: string): string {
  return output.replace(/\.jsonl$/, '') + '.skipped.jsonl';
}

async function sizeOf(path: string): Promise<number> {
  return (await stat(path).catch(() => undefined))?.size ?? 0;
}

/** Prompt keys of the rows already in `path` (checked: one JSON object with a prompt per line). */
async function promptsIn(path: string): Promise<{ keys: string[]; labels: unknown[]; endsWithNewline: boolean }> {
  const text = await readFile(path, 'utf8').catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return '';
    throw new DpoError(`${path}: cannot read (${e.message})`);
  });
  const keys: string[] = [];
  const labels: unknown[] = [];
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    let row: unknown;
    try {
      row = JSON.parse(line);
    } catch {
      throw new DpoError(`${path}:${i + 1}: not valid JSON; fix or move the file before resuming`);
    }
    if (typeof row !== 'object' || row === null || !('prompt' in row)) throw new DpoError(`${path}:${i + 1}: row has no 'prompt' field; is this a labelling output file?`);
    keys.push(promptKey((row as { prompt: unknown }).prompt));
    labels.push((row as { label?: unknown }).label);
  });
  return { keys, labels, endsWithNewline: text.length === 0 || text.endsWith('\n') };
}

export class LabelStore {
  private readonly undoStack: Appended[] = [];
  private readonly needsNewline: Record<DecisionFile, boolean>;

  private constructor(
    readonly paths: Readonly<Record<DecisionFile, string>>,
    /** Prompt keys decided before this session (resume), and how many of each kind. */
    readonly resumed: ReadonlySet<string>,
    readonly resumedCounts: Readonly<{ preferences: number; ties: number; skips: number }>,
    private readonly startSizes: Readonly<Record<DecisionFile, number>>,
    endsWithNewline: Readonly<Record<DecisionFile, boolean>>,
  ) {
    this.needsNewline = { output: !endsWithNewline.output, skipped: !endsWithNewline.skipped };
  }

  static async open(output: string): Promise<LabelStore> {
    const paths = { output, skipped: skippedPath(output) };
    if (paths.skipped === output) throw new DpoError(`${output}: the output file name must differ from its sidecar ${paths.skipped}`);
    const out = await promptsIn(paths.output);
    const skip = await promptsIn(paths.skipped);
    return new LabelStore(
      paths,
      new Set([...out.keys, ...skip.keys]),
      { preferences: out.keys.length, ties: skip.labels.filter((l) => l === 'tie').length, skips: skip.labels.filter((l) => l !== 'tie').length },
      { output: await sizeOf(paths.output), skipped: await sizeOf(paths.skipped) },
      { output: out.endsWithNewline, skipped: skip.endsWithNewline },
    );
  }

  /** Appends one row; it can be taken back with {@link undo}. */
  async append(file: DecisionFile, row: { prompt: unknown; [field: string]: unknown }): Promise<void> {
    const path = this.paths[file];
    const line = `${this.needsNewline[file] ? '\n' : ''}${JSON.stringify(row)}\n`;
    const handle = await open(path, 'a');
    try {
      const before = (await handle.stat()).size;
      await handle.write(line);
      await handle.sync();
      this.undoStack.push({ file, before, after: before + Buffer.byteLength(line), promptKey: promptKey(row.prompt), neededNewline: this.needsNewline[file] });
      this.needsNewline[file] = false;
    } finally {
      await handle.close();
    }
  }

  get canUndo(): boolean {
    return this.undoStack.length > 0;
  }

  /** Removes the last row this session appended; returns its prompt key, or undefined. */
  async undo(): Promise<string | undefined> {
    const last = this.undoStack[this.undoStack.length - 1];
    if (!last) return undefined;
    const path = this.paths[last.file];
    const size = await sizeOf(path);
    if (size !== last.after || last.before < this.startSizes[last.file]) {
      throw new DpoError(`${path}: changed outside this labelling session (${size} bytes, expected ${last.after}); not undoing`);
    }
    await truncate(path, last.before);
    this.undoStack.pop();
    this.needsNewline[last.file] = last.neededNewline;
    return last.promptKey;
  }
}
