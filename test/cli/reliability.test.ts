/**
 * `dpo train` with a user's files at stake and faults on the way: the model folder or a foreign
 * folder as --output, resume that extends a finished run, --save-total-limit, a resume mismatch
 * found before any work, SIGTERM, and rows longer than the model's context.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { makeTinyGpt2, tempDir, writeSentimentPairs } from '../train/helpers.js';
import { runCli } from './run-cli.js';

let dir: string;
let model: string;
let pairs: string;
beforeAll(async () => {
  dir = tempDir('dpo-ts-rel-');
  model = await makeTinyGpt2(join(dir, 'model'), { seed: 7 });
  pairs = join(dir, 'pairs.jsonl');
  writeSentimentPairs(pairs, 8, 5);
});

const train = (output: string, ...extra: string[]) =>
  runCli(['train', '--model', model, '--data', pairs, '--output', output, '--cache-dir', join(dir, 'cache'), '--threads', '1', '--batch-size', '4', '--learning-rate', '1e-3', '--logging-steps', '1', ...extra]);

const snapshot = (folder: string): string[] => readdirSync(folder).sort().map((n) => `${n}:${statSync(join(folder, n)).size}:${statSync(join(folder, n)).mtimeMs}`);

describe('dpo train: the output folder', () => {
  it('--output == --model is refused before any work, and the model is untouched', async () => {
    const before = snapshot(model);
    for (const extra of [[], ['--overwrite-output']]) {
      const r = await train(model, '--max-steps', '1', ...extra);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^dpo: --output .* is the model folder/m);
      expect(r.stderr).not.toMatch(/train data:|reference log-probs/);
    }
    expect(snapshot(model)).toEqual(before);
  });

  it('a non-empty folder that is not a train run is refused unless --overwrite-output', async () => {
    const out = join(dir, 'notes');
    mkdirSync(out);
    writeFileSync(join(out, 'pytorch_model.bin'), 'user weights');
    const r = await train(out, '--max-steps', '1');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/dpo: --output .*notes is not empty \(pytorch_model\.bin\) and is not a dpo-ts dpo train run; .*--overwrite-output/);
    expect(readdirSync(out)).toEqual(['pytorch_model.bin']);
    const ok = await train(out, '--max-steps', '1', '--overwrite-output');
    expect(ok.code).toBe(0);
    expect(existsSync(join(out, 'model.safetensors'))).toBe(true);
  });
});

describe('dpo train: resume', () => {
  it('a finished run is extended with --resume --max-steps; --save-total-limit keeps the newest; a mismatch is found before any work', async () => {
    const out = join(dir, 'extend');
    const first = await train(out, '--max-steps', '2', '--save-steps', '2');
    expect(first.code).toBe(0);
    expect(existsSync(join(out, 'checkpoint-2'))).toBe(true);

    const mismatch = await train(out, '--max-steps', '4', '--save-steps', '2', '--resume', '--learning-rate', '5e-4');
    expect(mismatch.code).toBe(1);
    expect(mismatch.stderr).toMatch(/resume: .*checkpoint-2 was made with different training options \(learningRate 0.001 -> 0.0005\); only --max-steps/);
    expect(mismatch.stderr).not.toMatch(/train data:|reference log-probs/);

    // A killed save left a partial folder: the next run removes it.
    mkdirSync(join(out, 'checkpoint-3.partial-999999'));
    const more = await train(out, '--max-steps', '4', '--save-steps', '1', '--save-total-limit', '1', '--resume');
    expect(more.code).toBe(0);
    expect(JSON.parse(more.stdout).steps).toBe(4);
    expect(more.stderr).toMatch(/resumed from .*checkpoint-2 at step 2/);
    expect(readdirSync(out).filter((n) => n.startsWith('checkpoint-'))).toEqual(['checkpoint-4']);
    const steps = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).step);
    expect(steps).toEqual([1, 2, 3, 4]);
  });
});

describe('dpo train: signals and context', () => {
  it('SIGTERM stops after the step with a checkpoint and exit code 143; the library installs no handler', async () => {
    const out = join(dir, 'term');
    let stdout = '';
    let stderr = '';
    let sent = false;
    const before = process.listenerCount('SIGTERM');
    const code = await main(['train', '--model', model, '--data', pairs, '--output', out, '--cache-dir', join(dir, 'cache'), '--threads', '1', '--batch-size', '4', '--max-steps', '6'], {
      stdout: { write: (s: string) => (stdout += s), isTTY: false },
      stderr: {
        write: (s: string) => {
          stderr += s;
          // Sent while the first step runs (the step awaits ONNX Runtime, so the timer fires then).
          if (!sent && /train 0\/6/.test(s)) {
            sent = true;
            setTimeout(() => process.emit('SIGTERM'), 0);
          }
        },
        isTTY: false,
      },
    });
    expect(sent).toBe(true);
    expect(code).toBe(143);
    expect(stderr).toMatch(/SIGTERM: finishing this step, saving a checkpoint/);
    expect(JSON.parse(stdout)).toMatchObject({ interrupted: true });
    expect(readdirSync(out).filter((n) => n.startsWith('checkpoint-')).length).toBe(1);
    expect(existsSync(join(out, 'model.safetensors'))).toBe(false);
    expect(process.listenerCount('SIGTERM')).toBe(before);
  });

  it('rows longer than max_position_embeddings are cut to the context up front, and the data report names the limit', async () => {
    const long = join(dir, 'long.jsonl');
    const words = Array.from({ length: 200 }, (_, i) => `word${i}`).join(' ');
    writeFileSync(long, `${[0, 1, 2, 3].map((i) => JSON.stringify({ prompt: `${words} ${i}`, chosen: ' good', rejected: ' bad' })).join('\n')}\n`);
    const out = join(dir, 'long');
    const r = await runCli(['train', '--model', model, '--data', long, '--eval-data', long, '--output', out, '--cache-dir', join(dir, 'cache'), '--threads', '1', '--batch-size', '4', '--max-steps', '1']);
    expect(r.stderr).toMatch(/train data: 4 rows, \d+ tokens; 4 rows truncated to max-length 128/);
    expect(r.stderr).toMatch(/eval data: 4 rows, \d+ tokens; 4 rows truncated to max-length 128/);
    expect(r.code).toBe(0);
  });
});
