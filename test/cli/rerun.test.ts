/**
 * A run into the folder of an earlier run: a fresh run sets the earlier run's checkpoints and
 * metrics aside (or deletes them with --overwrite-output) so that --save-total-limit and --resume
 * see this run's only; a resume from an older checkpoint moves the newer ones aside and logs no
 * step twice; a save killed between pruning and its rename is completed on the next start.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { makeTinyGpt2, tempDir, writeSentimentPairs } from '../train/helpers.js';
import { runCli } from './run-cli.js';

let dir: string;
let model: string;
let pairs: string;
beforeAll(async () => {
  dir = tempDir('dpo-ts-rerun-');
  model = await makeTinyGpt2(join(dir, 'model'), { seed: 7 });
  pairs = join(dir, 'pairs.jsonl');
  writeSentimentPairs(pairs, 8, 5);
});

const train = (output: string, ...extra: string[]) =>
  runCli(['train', '--model', model, '--data', pairs, '--output', output, '--cache-dir', join(dir, 'cache'), '--threads', '1', '--batch-size', '4', '--learning-rate', '1e-3', '--logging-steps', '1', ...extra]);
const checkpoints = (out: string): string[] => readdirSync(out).filter((n) => /^checkpoint-\d+$/.test(n)).sort();
const loggedSteps = (out: string): number[] => readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).step);

describe('a fresh run into an earlier run folder', () => {
  it('moves the earlier checkpoints and metrics aside; retention and --resume see this run only', async () => {
    const out = join(dir, 'again');
    expect((await train(out, '--max-steps', '4', '--save-steps', '1', '--save-total-limit', '2')).code).toBe(0);
    expect(checkpoints(out)).toEqual(['checkpoint-3', 'checkpoint-4']);

    const again = await train(out, '--max-steps', '2', '--save-steps', '1', '--save-total-limit', '2', '--learning-rate', '5e-4');
    expect(again.code).toBe(0);
    expect(again.stderr).toMatch(/moved the 2 checkpoint\(s\) and metrics of an earlier run in .* to .*earlier-runs/);
    expect(again.stderr).not.toMatch(/removed .*checkpoint-[12] /);
    expect(checkpoints(out)).toEqual(['checkpoint-1', 'checkpoint-2']);
    expect(loggedSteps(out)).toEqual([1, 2]);
    const [aside] = readdirSync(join(out, 'earlier-runs'));
    expect(readdirSync(join(out, 'earlier-runs', aside)).sort()).toEqual(['checkpoint-3', 'checkpoint-4', 'metrics.jsonl']);

    // --resume continues this run (its options), not the earlier one.
    const more = await train(out, '--max-steps', '3', '--save-steps', '1', '--save-total-limit', '2', '--learning-rate', '5e-4', '--resume');
    expect(more.code).toBe(0);
    expect(more.stderr).toMatch(/resumed from .*checkpoint-2 at step 2/);
    expect(loggedSteps(out)).toEqual([1, 2, 3]);
  });

  it('removes the temporary files a killed run left (a model-sized .model.safetensors.tmp-*), not a live one', async () => {
    const out = join(dir, 'tmpfiles');
    expect((await train(out, '--max-steps', '1')).code).toBe(0);
    const dead = Number(spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout);
    const stale = `.model.safetensors.tmp-${dead}-0badc0de`;
    const live = `.model.safetensors.tmp-${process.pid}-0000beef`;
    writeFileSync(join(out, stale), 'half a model');
    writeFileSync(join(out, live), 'being written');
    const r = await train(out, '--max-steps', '1');
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(new RegExp(`removed .*${stale.replace(/\./g, '\\.')}, a temporary file a stopped run left`));
    expect(existsSync(join(out, stale))).toBe(false);
    expect(existsSync(join(out, live))).toBe(true);
  });

  it('--overwrite-output deletes the earlier checkpoints instead', async () => {
    const out = join(dir, 'overwrite');
    expect((await train(out, '--max-steps', '3', '--save-steps', '1')).code).toBe(0);
    const r = await train(out, '--max-steps', '1', '--save-steps', '1', '--overwrite-output');
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/--overwrite-output: removed the 3 checkpoint\(s\)/);
    expect(checkpoints(out)).toEqual(['checkpoint-1']);
    expect(existsSync(join(out, 'earlier-runs'))).toBe(false);
  });
});

describe('resume from an older checkpoint', () => {
  it('moves the newer checkpoints aside and logs every step once', async () => {
    const out = join(dir, 'older');
    expect((await train(out, '--max-steps', '4', '--save-steps', '1', '--save-total-limit', '3')).code).toBe(0);
    const r = await train(out, '--max-steps', '4', '--save-steps', '1', '--save-total-limit', '3', '--resume', join(out, 'checkpoint-2'));
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/moved checkpoint-3, checkpoint-4 \(after the resumed step 2\)/);
    expect(r.stderr).not.toMatch(/removed .*checkpoint-3 /);
    expect(checkpoints(out)).toEqual(['checkpoint-2', 'checkpoint-3', 'checkpoint-4']);
    expect(loggedSteps(out)).toEqual([1, 2, 3, 4]);
  });

  it('a save killed after pruning but before its rename is completed, not lost', async () => {
    const out = join(dir, 'limit1');
    expect((await train(out, '--max-steps', '2', '--save-steps', '1', '--save-total-limit', '1')).code).toBe(0);
    // The state a kill leaves there: the older checkpoint pruned, the new one whole under its partial name.
    renameSync(join(out, 'checkpoint-2'), join(out, 'checkpoint-2.partial-999999'));
    cpSync(join(out, 'checkpoint-2.partial-999999'), join(out, 'checkpoint-3.partial-999998'), { recursive: true });
    readdirSync(join(out, 'checkpoint-3.partial-999998')); // damaged below: trainer_state.json removed
    renameSync(join(out, 'checkpoint-3.partial-999998', 'trainer_state.json'), join(out, 'trainer_state.json.bak'));
    const r = await train(out, '--max-steps', '3', '--save-steps', '1', '--save-total-limit', '1', '--resume');
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/completed .*checkpoint-2, a checkpoint an earlier run wrote whole/);
    expect(r.stderr).toMatch(/removed .*checkpoint-3\.partial-999998/);
    expect(r.stderr).toMatch(/resumed from .*checkpoint-2 at step 2/);
    expect(checkpoints(out)).toEqual(['checkpoint-3']);
  });
});
