/** The run lock of an output folder: exclusive, with the pid; stale locks are taken over. */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { acquireRunLock, RUN_LOCK_FILE } from '../../src/io/run-lock.js';
import { tempDir } from '../train/helpers.js';

/** The pid of a process that has already exited. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(r.stdout);
}

describe('run lock', () => {
  it('a second run on the same folder is refused with the pid; released, it can be taken again', async () => {
    const dir = tempDir('dpo-ts-lock-');
    const lock = await acquireRunLock(dir, 'dpo train');
    const held = JSON.parse(readFileSync(join(dir, RUN_LOCK_FILE), 'utf8'));
    expect(held).toMatchObject({ pid: process.pid, host: hostname(), command: 'dpo train' });
    await expect(acquireRunLock(dir, 'dpo sft')).rejects.toThrow(new RegExp(`is in use by another dpo run \\(pid ${process.pid}, dpo train`));
    await lock.release();
    expect(existsSync(join(dir, RUN_LOCK_FILE))).toBe(false);
    const again = await acquireRunLock(dir, 'dpo sft');
    await again.release();
  });

  it('takes over a stale lock of a process that is gone, refuses one from another host', async () => {
    const dir = tempDir('dpo-ts-lock-');
    const file = join(dir, RUN_LOCK_FILE);
    const pid = deadPid();
    writeFileSync(file, JSON.stringify({ pid, host: hostname(), started: '2020-01-01T00:00:00Z', command: 'dpo train', token: 'old' }));
    const notes: string[] = [];
    const lock = await acquireRunLock(dir, 'dpo train', (m) => notes.push(m));
    expect(notes).toEqual([expect.stringContaining(`stale lock of pid ${pid} (no longer running) taken over`)]);
    expect(JSON.parse(readFileSync(file, 'utf8')).pid).toBe(process.pid);
    await lock.release();

    writeFileSync(file, JSON.stringify({ pid: 1, host: 'elsewhere', started: '2020-01-01T00:00:00Z', command: 'dpo train', token: 'x' }));
    await expect(acquireRunLock(dir, 'dpo train')).rejects.toThrow(/in use by a dpo run on host elsewhere \(pid 1.*if that run is over, delete .*\.dpo-ts\.lock/);
  });

  it('release leaves a lock that another run has taken meanwhile', async () => {
    const dir = tempDir('dpo-ts-lock-');
    const file = join(dir, RUN_LOCK_FILE);
    const lock = await acquireRunLock(dir, 'dpo train');
    writeFileSync(file, JSON.stringify({ pid: process.pid, host: hostname(), started: 'now', command: 'other', token: 'theirs' }));
    await lock.release();
    expect(existsSync(file)).toBe(true);
  });
});
