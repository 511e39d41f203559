/**
 * Atomic file replacement: write to a temporary sibling, then rename over the target. A crash
 * or error mid-write leaves the old file (or nothing) in place, never a truncated one.
 */
import { randomBytes } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { DpoError } from '../errors.js';

/** A unique hidden name next to `target`; same directory so that rename() stays atomic. */
export function tempSibling(target: string, tag = 'tmp'): string {
  return join(dirname(target), `.${basename(target)}.${tag}-${process.pid}-${randomBytes(4).toString('hex')}`);
}

/**
 * Create `target` by letting `write` fill a temp file through its handle; fsync, then rename.
 * The temp file is removed when `write` throws.
 */
export async function writeFileAtomic(
  target: string,
  write: (handle: import('node:fs/promises').FileHandle) => Promise<void>,
): Promise<void> {
  const tmp = tempSibling(target);
  let handle: import('node:fs/promises').FileHandle;
  try {
    handle = await open(tmp, 'wx');
  } catch (e) {
    throw withPath(e, target);
  }
  try {
    await write(handle);
    await handle.sync();
    await handle.close();
    await rename(tmp, target);
  } catch (e) {
    await handle.close().catch(() => undefined);
    await rm(tmp, { force: true });
    throw withPath(e, target);
  }
}

/**
 * A file-system error as one line naming the file (Node's own messages for ENOSPC, EISDIR, EIO
 * on a write name no path); other errors pass through.
 */
export function withPath(e: unknown, path: string): unknown {
  const code = (e as NodeJS.ErrnoException).code;
  if (e instanceof DpoError || typeof code !== 'string' || !/^E[A-Z]+$/.test(code)) return e;
  const what = ERRNO_WORDS[code] ?? (e as Error).message.replace(/^E[A-Z]+: /, '').replace(/, \w+( '.*')?$/, '');
  return new DpoError(`${path}: cannot write (${code}: ${what})`);
}

const ERRNO_WORDS: Record<string, string> = {
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  EISDIR: 'a folder is in the way',
  ENOTDIR: 'a file is in the way of its folder',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'read-only file system',
  EIO: 'input/output error',
};

/** Atomically write a whole string or byte array. */
export async function writeBytesAtomic(target: string, data: string | Uint8Array): Promise<void> {
  await writeFileAtomic(target, async (handle) => {
    await handle.writeFile(data);
  });
}

/**
 * Puts the finished folder `tmp` at `dir`, which exists: `dir` is renamed aside first (and put
 * back if the second rename fails). Returns where the old folder now is; the caller removes it.
 */
export async function swapFolder(tmp: string, dir: string): Promise<string> {
  const old = tempSibling(dir, 'old');
  await rename(dir, old);
  try {
    await rename(tmp, dir);
  } catch (e) {
    await rename(old, dir);
    throw e;
  }
  return old;
}
