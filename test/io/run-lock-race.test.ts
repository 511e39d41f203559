/**
 * Stale-lock takeover is atomic: of three processes finding the same stale lock at once, exactly
 * one holds it. Real processes (the lock module bundled with esbuild so that they start fast),
 * driven in lockstep over stdin: "go <dir>" -> each tries -> "won"/"lost", then "release".
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RUN_LOCK_FILE } from '../../src/io/run-lock.js';
import { tempDir } from '../train/helpers.js';

const ROOT = join(import.meta.dirname, '..', '..');
const TAKER = `
import { acquireRunLock } from './run-lock.mjs';
import { createInterface } from 'node:readline';
let lock;
for await (const line of createInterface({ input: process.stdin })) {
  const [cmd, dir] = line.split(' ');
  if (cmd === 'go') {
    try { lock = await acquireRunLock(dir, 'dpo train'); console.log('won'); } catch (e) { console.log(/in use/.test(e.message) ? 'lost' : 'error ' + e.message); }
  } else if (cmd === 'release') {
    await lock?.release(); lock = undefined; console.log('released');
  }
}
`;

let work: string;
let takers: { child: ChildProcessWithoutNullStreams; next: () => Promise<string> }[] = [];
beforeAll(async () => {
  work = join(ROOT, 'node_modules', '.cache', `dpo-ts-lock-race-${process.pid}`);
  mkdirSync(work, { recursive: true });
  await build({ entryPoints: [join(ROOT, 'src', 'io', 'run-lock.ts')], bundle: true, platform: 'node', format: 'esm', packages: 'external', outfile: join(work, 'run-lock.mjs'), logLevel: 'warning' });
  writeFileSync(join(work, 'taker.mjs'), TAKER);
  takers = [0, 1, 2].map(() => {
    const child = spawn(process.execPath, [join(work, 'taker.mjs')], { stdio: ['pipe', 'pipe', 'pipe'] });
    const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
    return { child, next: async () => String((await lines.next()).value) };
  });
});
afterAll(() => {
  for (const t of takers) t.child.kill();
  rmSync(work, { recursive: true, force: true });
});

describe('run lock: stale takeover by simultaneous processes', () => {
  it('exactly one of 3 processes holds a stale lock they take over at once, in each of 20 trials', async () => {
    const pid = Number(spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout);
    for (let trial = 0; trial < 20; trial++) {
      const dir = tempDir('dpo-ts-lock-race-');
      writeFileSync(join(dir, RUN_LOCK_FILE), JSON.stringify({ pid, host: hostname(), started: '2020-01-01T00:00:00Z', command: 'dpo train', token: 'old' }));
      for (const t of takers) t.child.stdin.write(`go ${dir}\n`);
      const answers = await Promise.all(takers.map((t) => t.next()));
      expect(answers.filter((a) => a === 'won').length, `trial ${trial}: ${answers.join(', ')}`).toBe(1);
      expect(answers.filter((a) => a !== 'won' && a !== 'lost')).toEqual([]);
      for (const t of takers) t.child.stdin.write('release\n');
      await Promise.all(takers.map((t) => t.next()));
      expect(existsSync(join(dir, RUN_LOCK_FILE))).toBe(false);
      expect(existsSync(join(dir, `${RUN_LOCK_FILE}.takeover`))).toBe(false);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
