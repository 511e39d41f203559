/**
 * Where labelling decisions go. Two append-only JSONL files:
 *
 * - the output: rows `dpo train` reads, `{"prompt", "chosen", "rejected"}` for a pair or
 *   `{"prompt", "completions": [best, ..., worst]}` for a ranking of K > 2;
 * - `<output>.skipped.jsonl`: ties and skips, `{"prompt", "completions", "label": "tie"|"skip"}`.
 *   A tie is a decision (never asked again); a skip means "not now": a skipped prompt is offered
 *   again when the session is resumed, unless it was decided since.
 *
 * Existing files are resumed: their prompts count as done, and new rows are appended after their
 * bytes, which are never rewritten. Undo removes a row this session appended (the last one),
 * by truncating the file back to the size it had before that row, never below the size it had
 * when the session started.
 *
 * One writer per output: the store holds a lock file next to the output (`.<name>.dpo-ts.lock`)
 * until {@link LabelStore.close}, so a second server on the same output refuses to start. Rows
 * are written whole or not at all: a failed or short write (a full disk) is cut back to the
 * row's start before the error is reported.
 */
import { open, readFile, stat, truncate } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { DpoError } from '../errors.js';
import { acquireRunLock, type RunLock } from '../io/run-lock.js';
import { LabelError } from './errors.js';

export type DecisionFile = 'output' | 'skipped';

interface Appended {
  file: DecisionFile;
  before: number;
  after: number;
  promptKey: string;
  /** Whether the file lacked a final newline before this row (the row then began with one). */
  neededNewline: boolean;
}

/** The file operations an append needs (node's FileHandle has them); tests inject failing ones. */
export interface RowFile {
  stat(): Promise<{ size: number }>;
  write(buffer: Uint8Array, offset: number, length: number): Promise<{ bytesWritten: number }>;
  sync(): Promise<void>;
  truncate(length: number): Promise<void>;
  close(): Promise<void>;
}

/** Opens `path` for appending. */
export type OpenRowFile = (path: string) => Promise<RowFile>;

export interface LabelStoreOptions {
  /** Hears about a stale lock (its process gone) that was taken over. */
  onStaleLock?: (message: string) => void;
  /** Opens a file for appending (default: node's fs, flag 'a'). */
  openFile?: OpenRowFile;
}

/** The identity of a prompt across sessions: its value as the prompt file gives it. */
export function promptKey(prompt: unknown): string {
  return JSON.stringify(prompt);
}

/** The sidecar file of ties and skips for an output file. */
export function skippedPath(output: string): string {
  return output.replace(/\.jsonl$/, '') + '.skipped.jsonl';
}

/** The lock file that keeps a second labelling server off `output`. */
export function labelLockPath(output: string): string {
  return join(dirname(output), `.${basename(output)}.dpo-ts.lock`);
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

/** Writes all of `bytes` (a write may take only part of them). */
async function writeAll(handle: RowFile, bytes: Uint8Array): Promise<void> {
  let done = 0;
  while (done < bytes.length) {
    const { bytesWritten } = await handle.write(bytes, done, bytes.length - done);
    if (!(bytesWritten > 0)) throw Object.assign(new Error('the write stopped short (no space left?)'), { code: 'ENOSPC' });
    done += bytesWritten;
  }
}

const openForAppend: OpenRowFile = (path) => open(path, 'a');

export class LabelStore {
  private readonly undoStack: Appended[] = [];
  private readonly needsNewline: Record<DecisionFile, boolean>;
  private lock: RunLock | undefined;

  private constructor(
    readonly paths: Readonly<Record<DecisionFile, string>>,
    /** Prompt keys decided before this session (resume: preferences and ties). */
    readonly resumed: ReadonlySet<string>,
    /** Prompt keys skipped before this session and not decided since: offered again. */
    readonly skippedBefore: ReadonlySet<string>,
    readonly resumedCounts: Readonly<{ preferences: number; ties: number; skips: number }>,
    private readonly startSizes: Readonly<Record<DecisionFile, number>>,
    endsWithNewline: Readonly<Record<DecisionFile, boolean>>,
    private readonly openFile: OpenRowFile,
    lock: RunLock,
  ) {
    this.needsNewline = { output: !endsWithNewline.output, skipped: !endsWithNewline.skipped };
    this.lock = lock;
  }

  /** Opens (resumes) `output` and takes its lock; {@link close} gives the lock back. */
  static async open(output: string, options: LabelStoreOptions = {}): Promise<LabelStore> {
    const paths = { output, skipped: skippedPath(output) };
    if (paths.skipped === output) throw new DpoError(`${output}: the output file name must differ from its sidecar ${paths.skipped}`);
    const lock = await acquireRunLock(output, 'dpo label', options.onStaleLock, labelLockPath(output));
    try {
      const out = await promptsIn(paths.output);
      const side = await promptsIn(paths.skipped);
      const ties = side.keys.filter((_, i) => side.labels[i] === 'tie');
      const decided = new Set([...out.keys, ...ties]);
      const skipped = new Set(side.keys.filter((k, i) => side.labels[i] !== 'tie' && !decided.has(k)));
      return new LabelStore(
        paths,
        decided,
        skipped,
        { preferences: out.keys.length, ties: ties.length, skips: skipped.size },
        { output: await sizeOf(paths.output), skipped: await sizeOf(paths.skipped) },
        { output: out.endsWithNewline, skipped: side.endsWithNewline },
        options.openFile ?? openForAppend,
        lock,
      );
    } catch (e) {
      await lock.release();
      throw e;
    }
  }

  /** Gives the output's lock back (the store must not be written to afterwards). */
  async close(): Promise<void> {
    const lock = this.lock;
    this.lock = undefined;
    await lock?.release();
  }

  /**
   * Appends one row, whole or not at all (written, synced; on any failure the file is cut back
   * to its size before the row and a {@link LabelError} says nothing was saved). It can be taken
   * back with {@link undo}.
   */
  async append(file: DecisionFile, row: { prompt: unknown; [field: string]: unknown }): Promise<void> {
    if (!this.lock) throw new DpoError(`${this.paths.output}: the labelling store is closed`);
    const path = this.paths[file];
    const bytes = Buffer.from(`${this.needsNewline[file] ? '\n' : ''}${JSON.stringify(row)}\n`);
    let handle: RowFile;
    try {
      handle = await this.openFile(path);
    } catch (e) {
      throw writeFailed(path, e, 'nothing was written');
    }
    try {
      const before = (await handle.stat()).size;
      try {
        await writeAll(handle, bytes);
        await handle.sync();
      } catch (e) {
        // Whole rows or nothing: a half row would make the file unreadable to resume and dpo train.
        const cut = await handle
          .truncate(before)
          .then(() => handle.sync())
          .then(() => 'nothing was written', (t: Error) => `and cutting the partial row back failed too (${t.message}): remove the last line of ${path} before resuming`);
        throw writeFailed(path, e, cut);
      }
      this.undoStack.push({ file, before, after: before + bytes.length, promptKey: promptKey(row.prompt), neededNewline: this.needsNewline[file] });
      this.needsNewline[file] = false;
    } finally {
      await handle.close().catch(() => undefined);
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

function writeFailed(path: string, e: unknown, outcome: string): LabelError {
  const err = e as NodeJS.ErrnoException;
  const full = err.code === 'ENOSPC' || err.code === 'EDQUOT';
  return new LabelError(`could not save the decision to ${path} (${err.message}); ${outcome}: ${full ? 'free some space and ' : ''}choose again`, full ? 507 : 500);
}
