/**
 * Loading a bf16 checkpoint costs the float32 weights plus at most one tensor: bench/load-memory.ts
 * (a 15M-parameter Llama-shaped bf16 folder) run in its own process, where peak RSS means something.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..');

describe('load memory', () => {
  // VmHWM and its reset through /proc/self/clear_refs are Linux's.
  it.skipIf(!existsSync('/proc/self/clear_refs'))('a bf16 checkpoint loads within one float32 copy plus one tensor', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', join(ROOT, 'bench', 'run.ts'), 'load-memory'], {
      cwd: ROOT,
    });
    const result = JSON.parse(stdout.trim().split('\n').pop() as string);
    expect(result).toMatchObject({ bench: 'load-memory', checkpointDtype: 'BF16', withinBound: true });
    expect(result.peakAddedMB).toBeGreaterThanOrEqual(result.fp32MB * 0.9); // it measured the load
  }, 60_000);
});
