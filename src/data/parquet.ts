import { asyncBufferFromFile, parquetReadObjects } from 'hyparquet';
import { DpoError } from '../errors.js';
import type { RawRow } from './types.js';

/**
 * Rows of a Parquet file as plain objects (strings as UTF-8 text, lists as arrays, structs as
 * objects). Origins carry the 0-based row index. Uncompressed and Snappy files are supported; other
 * codecs need hyparquet-compressors, which dpo-ts does not bundle, so they fail with a clear error.
 */
export async function readParquetRows(file: string): Promise<RawRow[]> {
  let objects: Record<string, unknown>[];
  try {
    const buffer = await asyncBufferFromFile(file);
    objects = await parquetReadObjects({ file: buffer });
  } catch (err) {
    throw new DpoError(`${file}: cannot read Parquet: ${(err as Error).message}`);
  }
  return objects.map((value, index) => ({ value, origin: { file, line: index } }));
}
