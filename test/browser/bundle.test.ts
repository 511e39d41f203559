/**
 * The browser build: src/browser/index.ts bundles for the browser with onnxruntime-web and no
 * Node module (the build refuses any node:* or onnxruntime-node import, which this checks both
 * ways).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildBrowserBundle, PACKAGE_ROOT } from '../../src/studio/bundle.js';

describe('browser bundle', () => {
  it('bundles engine, models, losses, the DPO step and generation on onnxruntime-web, with no Node module', async () => {
    const { code, inputs } = await buildBrowserBundle();
    expect(inputs).toEqual(expect.arrayContaining([
      'src/engine/ort-platform.browser.ts',
      'src/engine/train-step.ts',
      'src/models/gpt2.ts',
      'src/models/llama.ts',
      'src/train/dpo/losses.ts',
      'src/train/dpo/loss-graph.ts',
      'src/generate/generator.ts',
      'node_modules/onnxruntime-web/dist/ort.webgpu.bundle.min.mjs',
    ]));
    expect(inputs.filter((f) => f.startsWith('node:') || f.includes('onnxruntime-node') || f === 'src/engine/ort-platform.ts' || f === 'src/engine/device.ts')).toEqual([]);
    expect(code).toMatch(/export \{/);
  }, 60_000);

  it('fails, naming the importer, when a browser module imports a Node module', async () => {
    // Inside the package, so that esbuild resolves it as one of ours (out/ is gitignored).
    mkdirSync(join(PACKAGE_ROOT, 'out'), { recursive: true });
    const dir = mkdtempSync(join(PACKAGE_ROOT, 'out', 'bundle-'));
    try {
      const entry = join(dir, 'entry.ts');
      writeFileSync(entry, "import { readFileSync } from 'node:fs';\nexport const f = readFileSync;\n");
      await expect(buildBrowserBundle({ entry })).rejects.toThrow(/node:fs is imported by out\/bundle-\w+\/entry\.ts: the browser build must not import Node modules/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
