/**
 * An interrupted `dpo export onnx` leaves the output as it was: SIGTERM removes the hidden staging
 * folder (exit 143), and a staging folder a killed export left (its pid gone) is removed by the
 * next export, while a running export's one is left alone.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, watch } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { runCli } from '../cli/run-cli.js';
import { makeTinyGpt2, tempDir } from '../train/helpers.js';

let dir: string;
let model: string;
beforeAll(async () => {
  dir = tempDir('dpo-ts-export-int-');
  model = await makeTinyGpt2(join(dir, 'model'), { seed: 1 });
});

function deadPid(): number {
  return Number(spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout);
}

describe('dpo export onnx, interrupted', () => {
  it('a staging folder of a dead export is removed by the next export; a live one is kept', async () => {
    const out = join(dir, 'onnx');
    expect((await runCli(['export', 'onnx', '--model', model, '--output', out])).code).toBe(0);
    const stale = `.dpo-exporting-${deadPid()}-0badc0de`;
    const live = `.dpo-exporting-${process.pid}-0000beef`;
    mkdirSync(join(out, stale, 'onnx'), { recursive: true });
    mkdirSync(join(out, live));
    const r = await runCli(['export', 'onnx', '--model', model, '--output', out]);
    expect(r.code, r.stderr).toBe(0);
    const hidden = readdirSync(out).filter((n) => n.startsWith('.dpo-exporting-'));
    expect(hidden).toEqual([live]);
  });

  it('SIGTERM mid-export removes the staging folder and the folder it created; exit 143', async () => {
    const out = join(dir, 'fresh');
    mkdirSync(out);
    let stderr = '';
    let sent = false;
    const watcher = watch(out, (_e, name) => {
      if (!sent && name && String(name).startsWith('.dpo-exporting-')) {
        sent = true;
        process.emit('SIGTERM');
      }
    });
    let code: number;
    try {
      code = await main(['export', 'onnx', '--model', model, '--output', out], {
        stdout: { write: () => true, isTTY: false },
        stderr: { write: (s: string) => (stderr += s), isTTY: false },
      });
    } finally {
      watcher.close();
    }
    expect(stderr).toMatch(/SIGTERM: stopping the export/);
    expect(code).toBe(143);
    expect(stderr).toMatch(/^dpo: export stopped by a signal; the output folder is left as it was$/m);
    expect(existsSync(out) ? readdirSync(out) : []).toEqual([]);
  });
});
