import { createReadStream } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
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

/**
 * Data for a loader or trainer: a file or folder path, or rows already in memory (an array of row
 * objects, library only; bad rows are reported as `<rows>:<index>`).
 */
export type DataSource = string | readonly object[];

/** How messages name a data source: its path, or `<rows>` for rows in memory. */
export function dataSourceName(source: DataSource): string {
  return typeof source === 'string' ? source : '<rows>';
}

/** Rows already in memory as one pseudo-file, `<rows>` (or `source`), line = index. */
export function inMemoryRows(rows: readonly unknown[], source = '<rows>'): FileRows {
  return { file: source, rows: rows.map((value, index) => ({ value, origin: { file: source, line: index } })), bad: [] };
}

/** Reads every data file under `path` (see {@link listDataFiles}), one entry per file; rows in memory as they are. */
export async function readDataPath(path: DataSource): Promise<FileRows[]> {
  if (typeof path !== 'string') return [inMemoryRows(path)];
  const files = await listDataFiles(path);
  const out: FileRows[] = [];
  for (const file of files) out.push(await readDataFile(file));
  return out;
}

/**
 * Lines of a file as raw bytes (without the newline and a CR before it): split on 0x0A, which is
 * never part of a multi-byte UTF-8 character, so each line can be decoded strictly on its own.
 */
async function* byteLines(file: string): AsyncGenerator<Buffer> {
  let pending: Buffer[] = [];
  for await (const chunk of createReadStream(file) as AsyncIterable<Buffer>) {
    let start = 0;
    for (let nl = chunk.indexOf(0x0a); nl !== -1; nl = chunk.indexOf(0x0a, start)) {
      pending.push(chunk.subarray(start, nl));
      yield withoutCr(pending.length === 1 ? pending[0] : Buffer.concat(pending));
      pending = [];
      start = nl + 1;
    }
    if (start < chunk.length) pending.push(chunk.subarray(start));
  }
  if (pending.length) yield withoutCr(Buffer.concat(pending));
}

function withoutCr(line: Buffer): Buffer {
  return line.length > 0 && line[line.length - 1] === 0x0d ? line.subarray(0, line.length - 1) : line;
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** The line as text, or the reason it is not valid UTF-8 (which Node would silently replace by U+FFFD). */
function decodeLine(bytes: Buffer): { text: string } | { reason: string } {
  try {
    return { text: strictUtf8.decode(bytes) };
  } catch {
    return { reason: `invalid UTF-8 at byte ${firstInvalidUtf8Byte(bytes) + 1} of the line (is this a text file in UTF-8?)` };
  }
}

/** Offset of the first byte that does not start a valid UTF-8 sequence (RFC 3629), or -1. */
export function firstInvalidUtf8Byte(b: Uint8Array): number {
  let i = 0;
  while (i < b.length) {
    const c = b[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    const more = c >= 0xc2 && c <= 0xdf ? 1 : c >= 0xe0 && c <= 0xef ? 2 : c >= 0xf0 && c <= 0xf4 ? 3 : 0;
    if (more === 0 || i + more > b.length - 1) return i;
    const c1 = b[i + 1];
    // Overlong forms, UTF-16 surrogates and code points above U+10FFFF.
    if ((c === 0xe0 && c1 < 0xa0) || (c === 0xed && c1 > 0x9f) || (c === 0xf0 && c1 < 0x90) || (c === 0xf4 && c1 > 0x8f)) return i;
    for (let k = 1; k <= more; k++) if ((b[i + k] & 0xc0) !== 0x80) return i;
    i += more + 1;
  }
  return -1;
}

async function readJsonl(file: string): Promise<FileRows> {
  const rows: RawRow[] = [];
  const bad: BadRow[] = [];
  // Streamed line by line: JSONL datasets can exceed V8's maximum string length.
  let line = 0;
  try {
    for await (const bytes of byteLines(file)) {
      line++;
      const decoded = decodeLine(bytes);
      if ('reason' in decoded) {
        bad.push({ file, line, reason: decoded.reason });
        continue;
      }
      const text = line === 1 ? stripBom(decoded.text) : decoded.text;
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
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (err) {
    throw new DpoError(`${file}: cannot read: ${(err as Error).message}`);
  }
  let text: string;
  try {
    text = strictUtf8.decode(bytes);
  } catch {
    const at = firstInvalidUtf8Byte(bytes);
    const line = bytes.subarray(0, at).filter((b) => b === 0x0a).length + 1;
    throw new DpoError(`${file}:${line}: invalid UTF-8 (is this a text file in UTF-8?)`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(stripBom(text));
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
