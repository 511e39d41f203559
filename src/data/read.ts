import { createReadStream } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { DpoError } from '../errors.js';
import { readParquetRows } from './parquet.js';
import type { BadRow, RawRow } from './types.js';

/** The rows of one data file: values still unchecked, plus lines that were not even JSON. */
export interface FileRows {
  file: string;
  rows: RawRow[];
  bad: BadRow[];
}

const EXTENSIONS = ['.jsonl', '.ndjson', '.json', '.parquet'] as const;

function extensionOf(file: string): (typeof EXTENSIONS)[number] | undefined {
  const lower = file.toLowerCase();
  return EXTENSIONS.find((ext) => lower.endsWith(ext));
}

/**
 * Data files under `path`: the file itself, or every .jsonl/.ndjson/.json/.parquet file below a
 * folder (recursively), sorted by path with a locale-independent comparison so the row order, and
 * with it shuffling, is the same on every machine.
 */
export async function listDataFiles(path: string): Promise<string[]> {
  let info;
  try {
    info = await stat(path);
  } catch {
    throw new DpoError(`data path not found: ${path}`);
  }
  if (!info.isDirectory()) {
    if (!extensionOf(path)) {
      throw new DpoError(`${path}: unsupported data file (expected ${EXTENSIONS.join(', ')})`);
    }
    return [path];
  }
  const files = (await walkFiles(path)).filter((f) => extensionOf(f)).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  if (files.length === 0) throw new DpoError(`${path}: no ${EXTENSIONS.join('/')} files in this folder`);
  return files;
}

// Own recursion: readdir's `recursive` option and Dirent.parentPath are missing or buggy in early Node 20 releases.
async function walkFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await walkFiles(full)));
    else if (entry.isFile()) out.push(full);
  }
  return out;
}

/** Reads one data file. File-level problems (unreadable, not a JSON array) throw a DpoError. */
export async function readDataFile(file: string): Promise<FileRows> {
  const ext = extensionOf(file);
  if (ext === '.jsonl' || ext === '.ndjson') return readJsonl(file);
  if (ext === '.json') return readJsonArray(file);
  if (ext === '.parquet') return { file, rows: await readParquetRows(file), bad: [] };
  throw new DpoError(`${file}: unsupported data file (expected ${EXTENSIONS.join(', ')})`);
}

/** Reads every data file under `path` (see {@link listDataFiles}), one entry per file. */
export async function readDataPath(path: string): Promise<FileRows[]> {
  const files = await listDataFiles(path);
  const out: FileRows[] = [];
  for (const file of files) out.push(await readDataFile(file));
  return out;
}

async function readJsonl(file: string): Promise<FileRows> {
  const rows: RawRow[] = [];
  const bad: BadRow[] = [];
  // Streamed line by line: JSONL datasets can exceed V8's maximum string length.
  const lines = createInterface({ input: createReadStream(file, { encoding: 'utf8' }), crlfDelay: Infinity });
  let line = 0;
  try {
    for await (let text of lines) {
      line++;
      if (line === 1) text = stripBom(text);
      // Blank lines are not rows (a trailing newline is common), so skipping them drops nothing.
      if (text.trim() === '') continue;
      try {
        rows.push({ value: JSON.parse(text), origin: { file, line } });
      } catch (err) {
        bad.push({ file, line, reason: `invalid JSON: ${(err as Error).message}` });
      }
    }
  } catch (err) {
    throw new DpoError(`${file}: cannot read: ${(err as Error).message}`);
  }
  return { file, rows, bad };
}

async function readJsonArray(file: string): Promise<FileRows> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(stripBom(await readFile(file, 'utf8')));
  } catch (err) {
    throw new DpoError(`${file}: invalid JSON: ${(err as Error).message}`);
  }
  if (!Array.isArray(parsed)) {
    throw new DpoError(`${file}: expected a JSON array of row objects (use .jsonl for one object per line)`);
  }
  return { file, rows: parsed.map((value, index) => ({ value, origin: { file, line: index } })), bad: [] };
}

function stripBom(text: string): string {
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}
