/** A tensor above WebGPU's 1 GiB buffer limit (SwiftShader's, and many adapters') is named in the error. */
import { expect, it } from 'vitest';
import { DeviceError } from '../../src/engine/device.js';
import { Graph } from '../../src/engine/graph.js';
import * as op from '../../src/engine/ops.js';
import { CompiledGraph } from '../../src/engine/runtime.js';
import { describeWebgpu } from './helpers.js';

describeWebgpu('WebGPU buffer limit', () => {
  it('names the tensor and the limit', async () => {
    const n = 2 ** 28 + 1024; // 1 GiB + 4 KiB of float32
    const g = new Graph('too_big');
    const x = g.input('huge_input', 'float32', [n]);
    const compiled = await CompiledGraph.compile({ total: op.sum(op.mul(x, 2)) }, { executionProvider: 'webgpu' });
    try {
      const e = await compiled.run({ huge_input: { data: new Float32Array(n), dims: [n] } }).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(DeviceError);
      expect((e as Error).message).toMatch(/^device webgpu: tensor 'huge_input' is 1073745920 bytes, above the WebGPU buffer limit of 1073741824 bytes/);
    } finally {
      await compiled.release();
    }
  }, 600_000);
});
