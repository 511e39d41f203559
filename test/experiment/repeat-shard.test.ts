/**
 * What --seed promises and what --shard builds, end to end on tiny settings (a tiny random GPT-2,
 * the word-count scorer, PPO included since it trains on its own samples): two runs with the same
 * seed and threads write byte-identical frontier.jsonl, with the thread count and CPU recorded;
 * two shards in two processes sharing one folder, then `dpo experiment merge`, give the same
 * frontier and summary as one process; a merge of a partial folder lists what is missing.
 */
import { spawn } from 'node:child_process';
import { cpus } from 'node:os';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../cli/run-cli.js';
import { makeTinyGpt2, tempDir } from '../train/helpers.js';

const TRAIN = ['The movie was', 'Our trip to the city', 'The food at the hotel', 'My first day at work', 'The new house', 'The music last night'];
const HELD_OUT = ['The concert was', 'The wedding'];
const ROOT = join(import.meta.dirname, '..', '..');

/** The CLI in its own process (as a Kubernetes or SLURM task would run it). */
function dpoProcess(args: readonly string[]): Promise<{ code: number; stderr: string }> {
  return new Promise((done) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'test', 'cli', 'dpo-bin.ts'), ...args], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => done({ code: code ?? 1, stderr }));
  });
}

describe('dpo experiment sentiment: repeatable, sharded, merged', () => {
  let dir: string;
  let args: (output: string) => string[];

  beforeAll(async () => {
    dir = tempDir('dpo-ts-experiment-shard-');
    const model = await makeTinyGpt2(join(dir, 'model'), { seed: 3 });
    const prompts = join(dir, 'prompts.jsonl');
    const heldOut = join(dir, 'heldout.jsonl');
    writeFileSync(prompts, TRAIN.map((p) => JSON.stringify({ prompt: p })).join('\n') + '\n');
    writeFileSync(heldOut, HELD_OUT.map((p) => JSON.stringify({ prompt: p })).join('\n') + '\n');
    args = (output) => [
      'experiment', 'sentiment', '--model', model, '--output', output, '--prompts', prompts, '--held-out-prompts', heldOut,
      '--scorer', 'length', '--samples', '4', '--eval-samples', '2', '--max-new-tokens', '6', '--steps', '8', '--checkpoints', '2',
      '--reward-steps', '2', '--batch-size', '8', '--learning-rate', '1e-3', '--methods', 'DPO,PPO,Best-of-N', '--betas', '0.1', '--target-kls', '2',
      '--best-of', '2', '--threads', '1', '--seeds', '2',
    ];
  });

  it('repeats byte for byte with the same seed and threads, and records the threads and CPU', async () => {
    const a = await runCli(args(join(dir, 'a')));
    expect(a.code, a.stderr).toBe(0);
    const b = await runCli(args(join(dir, 'b')));
    expect(b.code, b.stderr).toBe(0);
    const frontier = readFileSync(join(dir, 'a', 'frontier.jsonl'), 'utf8');
    expect(readFileSync(join(dir, 'b', 'frontier.jsonl'), 'utf8')).toBe(frontier);
    const summary = JSON.parse(readFileSync(join(dir, 'a', 'summary.json'), 'utf8'));
    expect(summary.host).toMatchObject({ threads: 1, cpu: cpus()[0].model.trim() });
    // Two seeds: every (method, setting, step) pooled over both, with an interval around the mean.
    expect(new Set(summary.points.map((p: { seed: number }) => p.seed))).toEqual(new Set([0, 1]));
    for (const p of summary.pooled) {
      expect(p.seeds).toBe(2);
      expect(p.rewardCi[0]).toBeLessThanOrEqual(p.reward);
      expect(p.rewardCi[1]).toBeGreaterThanOrEqual(p.reward);
    }
    expect(summary.reading.join(' ')).toMatch(/The reference scores/);
    expect(readFileSync(join(dir, 'a', 'report.html'), 'utf8')).toContain('1 ONNX Runtime threads on');
  }, 600_000);

  it('two shards in two processes, then merge, equal one process', async () => {
    const shared = join(dir, 'shared');
    const [s0, s1] = await Promise.all([dpoProcess([...args(shared), '--shard', '0/2']), dpoProcess([...args(shared), '--shard', '1/2'])]);
    expect(s0.code, s0.stderr).toBe(0);
    expect(s1.code, s1.stderr).toBe(0);
    const merged = await runCli(['experiment', 'merge', shared]);
    expect(merged.code, merged.stderr).toBe(0);
    expect(readFileSync(join(shared, 'frontier.jsonl'), 'utf8')).toBe(readFileSync(join(dir, 'a', 'frontier.jsonl'), 'utf8'));
    const strip = (file: string) => {
      const s = JSON.parse(readFileSync(file, 'utf8'));
      return { points: s.points, pooled: s.pooled, seeds: s.seeds, reading: s.reading, settings: s.settings, missing: s.missing, runs: s.runs.map((r: { seconds?: number }) => ({ ...r, seconds: 0 })) };
    };
    expect(strip(join(shared, 'summary.json'))).toEqual(strip(join(dir, 'a', 'summary.json')));

    // A shard that has not finished: merge builds what there is and lists the rest.
    rmSync(join(shared, 'points', 'seed-1', 'ppo-target-kl-2.json'));
    const partial = await runCli(['experiment', 'merge', shared]);
    expect(partial.code, partial.stderr).toBe(0);
    expect(partial.stderr).toMatch(/missing \(not finished\): seed 1: PPO target_kl=2/);
    expect(JSON.parse(readFileSync(join(shared, 'summary.json'), 'utf8')).missing).toEqual(['seed 1: PPO target_kl=2']);

    // A shard with other settings is refused: it would mix two experiments.
    const other = await runCli([...args(shared), '--shard', '1/2', '--betas', '0.5']);
    expect(other.code).toBe(1);
    expect(other.stderr).toMatch(/run another experiment \(betas differ\)/);
  }, 600_000);
});
