/**
 * Asking for a device that cannot run here fails with one line saying what to install or set;
 * 'cpu' always resolves; a bad --device value is refused by name.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DeviceError, resolveDevice } from '../../src/engine/device.js';
import { runCli } from '../cli/run-cli.js';

const ortLibs = join(dirname(createRequire(import.meta.url).resolve('onnxruntime-node/package.json')), 'bin', 'napi-v6', process.platform, process.arch);
const cudaInstalled = existsSync(join(ortLibs, 'libonnxruntime_providers_cuda.so'));

describe('devices', () => {
  it('cpu resolves to cpu', async () => {
    expect(await resolveDevice('cpu')).toBe('cpu');
  });

  it.skipIf(cudaInstalled)('cuda without its provider libraries says how to install them', async () => {
    const e = await resolveDevice('cuda').catch((x: unknown) => x);
    expect(e).toBeInstanceOf(DeviceError);
    expect((e as Error).message).toMatch(/^device cuda: onnxruntime-node's CUDA provider is not installed: reinstall it with ONNXRUNTIME_NODE_INSTALL=cuda12/);
    expect((e as Error).message).not.toContain('\n');
  });

  it.skipIf(process.platform !== 'linux')('webgpu without a Vulkan driver says there is no adapter and what to install', () => {
    // A fresh process: the Vulkan loader reads its driver list once, at start.
    const script = "import('./src/engine/device.ts').then(async (d) => { console.log(await d.deviceProblem('webgpu')); })";
    const out = execFileSync(process.execPath, ['--import', 'tsx', '-e', script], {
      cwd: join(import.meta.dirname, '..', '..'),
      env: { ...process.env, VK_ICD_FILENAMES: '/nonexistent/icd.json', LD_LIBRARY_PATH: '' },
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    expect(out.trim()).toMatch(/^no WebGPU adapter: onnxruntime-node's WebGPU provider needs a GPU with a Vulkan driver/);
  });

  it('a command asked for cuda without it fails with one line', async () => {
    if (cudaInstalled) return;
    const r = await runCli(['generate', '--model', join(import.meta.dirname, '..', '..', 'assets', 'brown-gpt2'), '--prompts', join(import.meta.dirname, '..', 'fixtures', 'data', 'pairs.jsonl'), '--max-new-tokens', '2', '--output', join(tmpdir(), `dpo-ts-device-${process.pid}.jsonl`), '--device', 'cuda']);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr.trim().split('\n').filter((l) => l.startsWith('dpo:'))).toEqual([expect.stringMatching(/^dpo: device cuda: .*ONNXRUNTIME_NODE_INSTALL=cuda12/)]);
  });

  it('refuses an unknown --device', async () => {
    const r = await runCli(['generate', '--model', 'x', '--prompts', 'y', '--output', 'z', '--device', 'tpu']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("option '--device <name>' argument 'tpu' is invalid. Allowed choices are cpu, webgpu, cuda, auto.");
  });
});
