/** --device cuda without onnxruntime-node's CUDA build says what to install (the device probe, before any session), not "Failed to load shared library". */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Graph } from '../../src/engine/graph.js';
import * as op from '../../src/engine/ops.js';
import { CompiledGraph } from '../../src/engine/runtime.js';

// The CUDA build puts its provider libraries next to the CPU binding; without them this test applies.
const binding = join(dirname(createRequire(import.meta.url).resolve('onnxruntime-node')), '..', 'bin', 'napi-v6', process.platform, process.arch);
const cudaInstalled = existsSync(join(binding, 'libonnxruntime_providers_cuda.so'));

describe.skipIf(cudaInstalled || process.platform !== 'linux')('execution provider missing', () => {
  it('names the flag and the install command', async () => {
    const g = new Graph('t');
    const x = g.input('x', 'float32', [2]);
    await expect(CompiledGraph.compile({ y: op.mul(x, 2) }, { threads: 1, executionProvider: 'cuda' })).rejects.toThrow(
      /^device cuda: onnxruntime-node's CUDA provider is not installed: reinstall it with ONNXRUNTIME_NODE_INSTALL=cuda12 \(npm rebuild onnxruntime-node[^\n]*$/,
    );
  });
});
