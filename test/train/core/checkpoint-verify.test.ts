/**
 * Resume uses a checkpoint only when it is complete and intact: every file trainer_state.json
 * lists is there with its size and SHA-256, and it holds every tensor and optimizer slot the run
 * needs. Otherwise the one before it is used (or, named explicitly, it is refused).
 */
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { findResumableCheckpoint, saveTrainingCheckpoint, type CheckpointContents, type CheckpointExpectation } from '../../../src/train/core/checkpoint.js';
import { tidyCheckpoints } from '../../../src/train/core/run-history.js';
import { tempDir } from '../helpers.js';

const shapes = new Map<string, readonly number[]>([
  ['a', [2, 3]],
  ['b', [4]],
]);
const expectation: CheckpointExpectation = { shapes, optimizerSlots: ['exp_avg', 'exp_avg_sq'] };

function contents(step: number, names = ['a', 'b']): CheckpointContents {
  const weights = new Map(names.map((n) => [n, new Float32Array(shapes.get(n)!.reduce((x, y) => x * y, 1)).fill(step)]));
  const optimizer = new Map(names.map((n) => [n, { exp_avg: Float32Array.from(weights.get(n)!), exp_avg_sq: Float32Array.from(weights.get(n)!) }]));
  return { state: { step, batcher: { epoch: 0, index: step }, totalSteps: 4, configDigest: 'x' }, weights, shapes, optimizer };
}

async function resumeFrom(output: string): Promise<{ step: number; warnings: string[] }> {
  const warnings: string[] = [];
  const r = await findResumableCheckpoint(output, undefined, (m) => warnings.push(m), expectation);
  return { step: r.contents.state.step, warnings };
}

describe('checkpoint verification on resume', () => {
  it('lists every file with its size and SHA-256 and accepts an intact checkpoint', async () => {
    const out = tempDir('dpo-ts-ckpt-');
    const dir = await saveTrainingCheckpoint(out, contents(2));
    const state = JSON.parse(readFileSync(join(dir, 'trainer_state.json'), 'utf8'));
    expect(Object.keys(state.files).sort()).toEqual(['optimizer.safetensors', 'weights.safetensors']);
    expect(state.files['weights.safetensors'].sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(await resumeFrom(out)).toEqual({ step: 2, warnings: [] });
  });

  it('falls back past a missing optimizer file, a changed byte, and a checkpoint lacking a tensor', async () => {
    const out = tempDir('dpo-ts-ckpt-');
    await saveTrainingCheckpoint(out, contents(1));
    const two = await saveTrainingCheckpoint(out, contents(2));
    rmSync(join(two, 'optimizer.safetensors'));
    let r = await resumeFrom(out);
    expect(r.step).toBe(1);
    expect(r.warnings[0]).toMatch(/checkpoint-2 is damaged \(optimizer\.safetensors is missing\); trying the one before/);

    const three = await saveTrainingCheckpoint(out, contents(3));
    const file = join(three, 'weights.safetensors');
    const bytes = readFileSync(file);
    bytes[bytes.length - 1] ^= 0x40; // same size, different content
    writeFileSync(file, bytes);
    r = await resumeFrom(out);
    expect(r.step).toBe(1);
    expect(r.warnings[0]).toMatch(/checkpoint-3 is damaged \(weights\.safetensors does not match its SHA-256/);

    // Written complete, but without a tensor this run trains (e.g. a run with other LoRA targets).
    await saveTrainingCheckpoint(out, contents(4, ['a']));
    r = await resumeFrom(out);
    expect(r.step).toBe(1);
    expect(r.warnings[0]).toMatch(/checkpoint-4 is damaged \(weights\.safetensors lacks 1 of the run's tensors \(b\)\)/);

    // Named explicitly, a damaged checkpoint is an error, not a fallback.
    await expect(findResumableCheckpoint(out, two, () => {}, expectation)).rejects.toThrow(/checkpoint-2 cannot be read: optimizer\.safetensors is missing/);
  });

  it('a checkpoint without the file list cannot be verified: it is reported and the one before is used', async () => {
    const out = tempDir('dpo-ts-ckpt-');
    await saveTrainingCheckpoint(out, contents(1));
    const two = await saveTrainingCheckpoint(out, contents(2));
    const statePath = join(two, 'trainer_state.json');
    const state = JSON.parse(readFileSync(statePath, 'utf8'));
    delete state.files;
    writeFileSync(statePath, JSON.stringify(state));
    const r = await resumeFrom(out);
    expect(r.step).toBe(1);
    expect(r.warnings[0]).toMatch(/checkpoint-2 is damaged \(trainer_state\.json has no "files" list, so its files cannot be verified\)/);
  });
});

describe('a save killed between its last file and pruning (--save-total-limit 2)', () => {
  it('the next run puts the whole partial in place and keeps the limit; a checkpoint whose removal was cut is finished off', async () => {
    const out = tempDir('dpo-ts-ckpt-');
    for (const step of [3, 4, 5]) await saveTrainingCheckpoint(out, contents(step));
    // checkpoint-5 written whole but not yet renamed, checkpoint-3 not yet pruned; a 2 half removed.
    renameSync(join(out, 'checkpoint-5'), join(out, 'checkpoint-5.partial-999999'));
    mkdirSync(join(out, 'checkpoint-2.removing-999999'));
    const log: string[] = [];
    await tidyCheckpoints(out, undefined, (m) => log.push(m), 2);
    expect(readdirSync(out).sort()).toEqual(['checkpoint-4', 'checkpoint-5']);
    expect(log.join('\n')).toMatch(/completed .*checkpoint-5,[\s\S]*removed .*checkpoint-3 \(--save-total-limit 2\)/);
  });
});
