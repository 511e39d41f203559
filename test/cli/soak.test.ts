/**
 * Soak: a DPO run with --save-steps 1 --save-total-limit 2 is killed with SIGKILL at 20 points
 * (seeded: in the reference pass, in steps, in saves) and resumed after each; it ends with the
 * same bytes as an uninterrupted run, and after no kill does the folder hold more than the two
 * checkpoints plus one partial. The CLI is bundled once with esbuild (what tsx would compile on
 * every start) so that the 21 processes start in about half a second each, and the model has a
 * 257-token byte vocabulary (GPT-2's 50257 made each checkpoint ~10 MB, written and fsynced 12
 * times a process): about 1 s of CPU a process, 26 s for the test instead of 38.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, watch, type FSWatcher } from 'node:fs';
import { join } from 'node:path';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Rng } from '../../src/data/rng.js';
import { makeTinyGpt2, tempDir, writeSentimentPairs } from '../train/helpers.js';

const ROOT = join(import.meta.dirname, '..', '..');
const KILLS = 20;
const STEPS = 12;
const LIMIT = 2;

let dir: string;
let bundle: string;
let model: string;
let pairs: string;
beforeAll(async () => {
  dir = tempDir('dpo-ts-soak-');
  // Inside the repository so that the bundle's external packages resolve from node_modules.
  const out = join(ROOT, 'node_modules', '.cache', 'dpo-ts-soak');
  mkdirSync(out, { recursive: true });
  bundle = join(out, `dpo-${process.pid}.mjs`);
  await build({ entryPoints: [join(ROOT, 'test', 'cli', 'dpo-bin.ts')], bundle: true, platform: 'node', format: 'esm', packages: 'external', outfile: bundle, logLevel: 'warning' });
  model = await makeTinyGpt2(join(dir, 'model'), { seed: 7, byteVocab: true });
  pairs = join(dir, 'pairs.jsonl');
  writeSentimentPairs(pairs, 16, 5);
});

afterAll(() => {
  rmSync(bundle, { force: true });
  rmSync(dir, { recursive: true, force: true });
});

const argv = (output: string, cache: string, resume: boolean): string[] => [
  'train', '--model', model, '--data', pairs, '--output', output, '--cache-dir', cache, '--threads', '1', '--batch-size', '4',
  '--learning-rate', '1e-3', '--max-steps', String(STEPS), '--save-steps', '1', '--save-total-limit', String(LIMIT), '--logging-steps', '1',
  ...(resume ? ['--resume'] : []),
];

interface Exit {
  code: number | null;
  killed: boolean;
  stderr: string;
}

/**
 * Runs the bundled CLI and SIGKILLs it `delayMs` after a stderr line matches `trigger`, or (a
 * `{ save }` trigger) after a checkpoint's partial folder appears in `save`: mid-save.
 */
function run(args: string[], trigger?: RegExp | { save: string }, delayMs = 0): Promise<Exit> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bundle, ...args], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    let armed = false;
    const fire = (): void => {
      if (armed) return;
      armed = true;
      setTimeout(() => child.kill('SIGKILL'), delayMs);
    };
    let watcher: FSWatcher | undefined;
    if (trigger && !(trigger instanceof RegExp)) {
      mkdirSync(trigger.save, { recursive: true });
      watcher = watch(trigger.save, (_event, name) => {
        if (name && /^checkpoint-\d+\.partial-\d+$/.test(String(name))) fire();
      });
    }
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      if (trigger instanceof RegExp && trigger.test(stderr)) fire();
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      watcher?.close();
      resolve({ code, killed: signal === 'SIGKILL', stderr });
    });
  });
}

const names = (folder: string): string[] => (existsSync(folder) ? readdirSync(folder).sort() : []);
const checkpointSteps = (folder: string): number[] => names(folder).flatMap((n) => (/^checkpoint-(\d+)$/.exec(n) ? [Number(/\d+/.exec(n)![0])] : []));

/** Every file of the final model and of the kept checkpoints, by relative path. */
function finalBytes(folder: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const n of ['model.safetensors', 'config.json']) out.set(n, readFileSync(join(folder, n)));
  for (const step of checkpointSteps(folder)) {
    for (const f of names(join(folder, `checkpoint-${step}`))) out.set(`checkpoint-${step}/${f}`, readFileSync(join(folder, `checkpoint-${step}`, f)));
  }
  return out;
}

describe('soak: SIGKILL at 20 seeded points, resumed each time', () => {
  it('ends byte-identical to an uninterrupted run and never holds more than the limit plus one partial', async () => {
    const plain = join(dir, 'plain');
    const whole = await run(argv(plain, join(dir, 'cache-plain'), false));
    expect(whole.code, whole.stderr).toBe(0);
    const expected = finalBytes(plain);
    expect(checkpointSteps(plain)).toEqual([STEPS - 1, STEPS]);

    const out = join(dir, 'soak');
    const cache = join(dir, 'cache-soak');
    const rng = new Rng(2026);
    const where = { reference: 0, training: 0, inSave: 0 };
    let kills = 0;
    for (let attempt = 0; kills < KILLS && attempt < KILLS * 3; attempt++) {
      const done = Math.max(0, ...checkpointSteps(out).concat(0));
      const r = rng.nextFloat();
      let trigger: RegExp | { save: string };
      let delay = Math.floor(rng.nextFloat() * 40);
      if (r < 0.2) {
        // The reference pass (recomputed: its cache is what an earlier kill may not have reached).
        rmSync(cache, { recursive: true, force: true });
        trigger = /train data:/;
      } else if (r < 0.45) {
        // A save: a few milliseconds into writing a checkpoint.
        trigger = { save: out };
        delay = Math.floor(rng.nextFloat() * 6);
      } else if (r < 0.7 || done >= STEPS - 2) {
        // Compiling, or the first steps after the start.
        trigger = /resumed from|train 0\//;
      } else {
        // A step or a save: some way after the save of a checkpoint still ahead.
        const k = done + 1 + Math.floor(rng.nextFloat() * Math.min(3, STEPS - 2 - done));
        trigger = new RegExp(`saved .*checkpoint-${k}\\n`);
      }
      const exit = await run(argv(out, cache, done > 0), trigger, delay);
      if (!exit.killed) {
        // It finished before its kill point (a fast machine): it must have ended as the uninterrupted
        // run did; the next kills go to a new run in a fresh folder.
        expect(exit.code, exit.stderr).toBe(0);
        const got = finalBytes(out);
        for (const [name, bytes] of expected) expect(got.get(name)?.equals(bytes), name).toBe(true);
        rmSync(out, { recursive: true, force: true });
        continue;
      }
      kills++;
      if (/^train \d+\/\d+/m.test(exit.stderr)) where.training++;
      else where.reference++;
      const left = names(out);
      if (left.some((n) => n.includes('.partial-'))) where.inSave++;
      expect(checkpointSteps(out).length, left.join(' ')).toBeLessThanOrEqual(LIMIT);
      expect(left.filter((n) => /^checkpoint-\d+\.partial-\d+$/.test(n)).length, left.join(' ')).toBeLessThanOrEqual(1);
      // A pruned checkpoint is renamed before it is deleted: a kill midway leaves at most this one.
      expect(left.filter((n) => /^checkpoint-\d+\.removing-\d+$/.test(n)).length, left.join(' ')).toBeLessThanOrEqual(1);
      expect(left).not.toContain('earlier-runs');
    }
    expect(kills).toBe(KILLS);
    const last = await run(argv(out, cache, checkpointSteps(out).length > 0));
    expect(last.code, last.stderr).toBe(0);
    console.log(`soak: ${kills} kills (${where.reference} before training, ${where.training} in steps and saves, ${where.inSave} of them mid-save)`);

    const got = finalBytes(out);
    expect([...got.keys()]).toEqual([...expected.keys()]);
    for (const [name, bytes] of expected) expect(got.get(name)!.equals(bytes), name).toBe(true);
    const steps = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).step);
    expect(steps).toEqual(Array.from({ length: STEPS }, (_, i) => i + 1));
  }, 240_000);
});
