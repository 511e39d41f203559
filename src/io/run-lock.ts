/**
 * One run per output folder: a lock file `<dir>/.dpo-ts.lock` holding the owner's pid, host and
 * start time, created exclusively (O_EXCL), so that two runs on one --output cannot interleave
 * metrics and files. A lock whose process is gone (same host, pid no longer running) is stale: it
 * is taken over with a note. A lock from another host cannot be checked and is refused, naming
 * the file to delete when that run is known to be over.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { open, readFile, rm, stat } from 'node:fs/promises';
import { DpoError } from '../errors.js';

export const RUN_LOCK_FILE = '.dpo-ts.lock';

interface LockRecord {
  pid: number;
  host: string;
  started: string;
  command: string;
  token: string;
}

export interface RunLock {
  readonly file: string;
  /** Removes the lock file if it is still this run's. */
  release(): Promise<void>;
}

/** A lock file younger than this with no readable record may be one being written right now. */
const FRESH_MS = 10_000;

/** Whether a process with this pid runs on this host (a pid of another user's process counts). */
export function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: the process exists but belongs to another user.
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function readRecord(file: string): Promise<LockRecord | undefined> {
  try {
    const v = JSON.parse(await readFile(file, 'utf8')) as Partial<LockRecord>;
    return typeof v.pid === 'number' && typeof v.host === 'string' ? (v as LockRecord) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Takes the lock of `dir` (which must exist) for `command`. `onStale` hears about a stale lock
 * that was taken over. `file` locks something else than a folder (`dir` then names it in messages,
 * e.g. `dpo label`'s output file).
 */
export async function acquireRunLock(dir: string, command: string, onStale?: (message: string) => void, file = join(dir, RUN_LOCK_FILE)): Promise<RunLock> {
  const record: LockRecord = { pid: process.pid, host: hostname(), started: new Date().toISOString(), command, token: randomBytes(8).toString('hex') };
  for (let attempt = 0; attempt < 50; attempt++) {
    try {
      const handle = await open(file, 'wx');
      try {
        await handle.writeFile(`${JSON.stringify(record)}\n`);
      } finally {
        await handle.close();
      }
      return { file, release: () => releaseLock(file, record.token) };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new DpoError(`${file}: cannot create the run lock (${(e as Error).message})`);
    }
    const held = await readRecord(file);
    if (!held) {
      const age = Date.now() - ((await stat(file).catch(() => undefined))?.mtimeMs ?? 0);
      if (age < FRESH_MS) throw new DpoError(`${dir} is in use by another dpo run (lock file ${file} is being written)`);
      if (await removeStale(file, undefined)) onStale?.(`${file}: unreadable stale lock removed`);
    } else if (held.host !== record.host) {
      throw new DpoError(`${dir} is in use by a dpo run on host ${held.host} (pid ${held.pid}, started ${held.started}); if that run is over, delete ${file}`);
    } else if (isRunning(held.pid)) {
      throw new DpoError(`${dir} is in use by another dpo run (pid ${held.pid}, ${held.command}, started ${held.started}); wait for it or stop it, or give another --output`);
    } else if (await removeStale(file, held.token)) {
      onStale?.(`${file}: stale lock of pid ${held.pid} (no longer running) taken over`);
    }
  }
  throw new DpoError(`${dir}: could not take the run lock ${file}`);
}

/**
 * Removes the stale lock `file` when it still is the one judged stale (its token; undefined: still
 * unreadable), holding `<file>.takeover` (O_EXCL) meanwhile: several runs finding the same stale
 * lock would otherwise each remove it, one of them the lock another had just created, and two
 * would hold it. Resolves false when another run is taking it over (the caller tries again).
 */
async function removeStale(file: string, token: string | undefined): Promise<boolean> {
  const guard = `${file}.takeover`;
  let handle;
  try {
    handle = await open(guard, 'wx');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    // A taker killed while holding it leaves it behind: stale after FRESH_MS.
    const age = Date.now() - ((await stat(guard).catch(() => undefined))?.mtimeMs ?? Date.now());
    if (age > FRESH_MS) await rm(guard, { force: true });
    await new Promise((r) => setTimeout(r, 5 + Math.random() * 20));
    return false;
  }
  try {
    const now = await readRecord(file);
    if (now?.token !== token) return false;
    await rm(file, { force: true });
    return true;
  } finally {
    await handle.close();
    await rm(guard, { force: true });
  }
}

async function releaseLock(file: string, token: string): Promise<void> {
  const held = await readRecord(file);
  if (held?.token === token) await rm(file, { force: true });
}
