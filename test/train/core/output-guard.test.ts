/**
 * The output guard, before any work: never the model folder, never a foreign non-empty folder
 * without --overwrite-output, never two runs at once, resume mismatches found at once.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { saveTrainingCheckpoint } from '../../../src/train/core/checkpoint.js';
import { guardOutput, RUN_MARKER_FILE, type OutputGuardOptions } from '../../../src/train/core/output-guard.js';
import { tempDir } from '../helpers.js';

function options(output: string, extra: Partial<OutputGuardOptions> = {}): OutputGuardOptions {
  return { output, model: 'org/model', command: 'dpo train', digest: 'd1', log: () => {}, ...extra };
}

describe('output guard', () => {
  it('refuses the model folder as --output, even with --overwrite-output', async () => {
    const dir = tempDir('dpo-ts-guard-');
    const model = join(dir, 'model');
    mkdirSync(model);
    writeFileSync(join(model, 'config.json'), '{}');
    await expect(guardOutput(options(model, { model }))).rejects.toThrow(/--output .*model is the model folder/);
    await expect(guardOutput(options(`${model}/./`, { model, overwriteOutput: true }))).rejects.toThrow(/is the model folder/);
    await expect(guardOutput(options(model, { inputs: [undefined, model] }))).rejects.toThrow(/is the model folder/);
    expect(readFileSync(join(model, 'config.json'), 'utf8')).toBe('{}');
    expect(existsSync(join(model, RUN_MARKER_FILE))).toBe(false);
  });

  it('refuses a non-empty folder that is not a run of this command unless --overwrite-output', async () => {
    const dir = tempDir('dpo-ts-guard-');
    const out = join(dir, 'mine');
    mkdirSync(out);
    writeFileSync(join(out, 'thesis.tex'), 'precious');
    await expect(guardOutput(options(out))).rejects.toThrow(/--output .*mine is not empty \(thesis\.tex\) and is not a dpo-ts dpo train run; give a new or empty folder, or --overwrite-output/);
    const notes: string[] = [];
    const lock = await guardOutput(options(out, { overwriteOutput: true, log: (m) => notes.push(m) }));
    expect(notes[0]).toMatch(/warning: --overwrite-output/);
    await lock.release();
    // Now it is a dpo train run: the same command may write into it again, another may not.
    const again = await guardOutput(options(out));
    await again.release();
    await expect(guardOutput(options(out, { command: 'dpo sft' }))).rejects.toThrow(/holds a dpo train run, not a dpo sft run/);
    writeFileSync(join(dir, 'file'), 'x');
    await expect(guardOutput(options(join(dir, 'file')))).rejects.toThrow(/exists and is not a folder/);
    await expect(guardOutput(options(join(dir, 'file', 'sub')))).rejects.toThrow(/cannot create the folder/);
  });

  it('takes the run lock: a second run on the same output is refused while the first holds it', async () => {
    const out = join(tempDir('dpo-ts-guard-'), 'run');
    const lock = await guardOutput(options(out));
    await expect(guardOutput(options(out))).rejects.toThrow(new RegExp(`in use by another dpo run \\(pid ${process.pid}`));
    await lock.release();
  });

  it('a run that fails before writing anything leaves no trace of the guard', async () => {
    const root = tempDir('dpo-ts-guard-');
    const fresh = join(root, 'fresh');
    await (await guardOutput(options(fresh))).release(true);
    expect(existsSync(fresh)).toBe(false);
    const empty = join(root, 'empty');
    mkdirSync(empty);
    await (await guardOutput(options(empty))).release(true);
    expect(readdirSync(empty)).toEqual([]);
    await (await guardOutput(options(empty))).release();
    expect(readdirSync(empty)).toEqual([RUN_MARKER_FILE]);
  });

  it('resume: no checkpoint, or one made with other options, is refused before any work', async () => {
    const out = join(tempDir('dpo-ts-guard-'), 'run');
    await expect(guardOutput(options(out, { resume: true }))).rejects.toThrow(/does not exist, so there is no checkpoint/);
    const lock = await guardOutput(options(out));
    await lock.release();
    await expect(guardOutput(options(out, { resume: true }))).rejects.toThrow(/no checkpoint-<step> folder/);
    await saveTrainingCheckpoint(out, {
      state: { step: 2, batcher: { epoch: 0, index: 2 }, totalSteps: 2, configDigest: 'd1' },
      weights: new Map([['w', new Float32Array(2)]]),
      shapes: new Map([['w', [2]]]),
      optimizer: new Map(),
    });
    await expect(guardOutput(options(out, { resume: true, digest: 'other' }))).rejects.toThrow(/checkpoint-2 was made with different training options/);
    expect(existsSync(join(out, '.dpo-ts.lock'))).toBe(false);
    const ok = await guardOutput(options(out, { resume: true }));
    await ok.release();
  });
});
