/** Reading the small JSON files of a model folder, with one-line errors naming the file. */
import { readFile } from 'node:fs/promises';
import { DpoError } from '../errors.js';

export type JsonObject = Record<string, unknown>;

/** Parse `path` as a JSON object; undefined when the file does not exist and `optional` is set. */
export async function readJsonObject(path: string, optional: true): Promise<JsonObject | undefined>;
export async function readJsonObject(path: string, optional?: false): Promise<JsonObject>;
export async function readJsonObject(path: string, optional = false): Promise<JsonObject | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf-8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (optional && code === 'ENOENT') return undefined;
    throw new DpoError(`${path}: cannot read file (${code ?? (e as Error).message})`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new DpoError(`${path}: invalid JSON (${(e as Error).message})`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new DpoError(`${path}: expected a JSON object`);
  }
  return value as JsonObject;
}
