/**
 * WebGPU tests run on whatever adapter onnxruntime-node's WebGPU provider finds: on CI and these
 * machines, SwiftShader (vitest.config.ts points Vulkan at Debian chromium's copy). Without an
 * adapter they are skipped, with one line saying why.
 */
import { join } from 'node:path';
import { describe } from 'vitest';
import { deviceProblem } from '../../src/engine/device.js';
export { fallbacks, floatCopies, placedNodes, type PlacedNode } from '../../src/engine/placement.js';
import type { HostTensor } from '../../src/engine/runtime.js';
import { loadPretrained, type Pretrained } from '../../src/models/pretrained.js';

export const WEBGPU_PROBLEM = await deviceProblem('webgpu');
if (WEBGPU_PROBLEM) console.log(`WebGPU tests skipped: ${WEBGPU_PROBLEM}`);

/** describe() that runs only where a WebGPU adapter can be made. */
export function describeWebgpu(name: string, body: () => void): void {
  describe.skipIf(WEBGPU_PROBLEM !== undefined)(name, body);
}

export const FIXTURES = join(import.meta.dirname, '..', 'fixtures', 'models');

export function loadFixture(name: string): Promise<Pretrained> {
  return loadPretrained(join(FIXTURES, name), { tokenizer: false });
}

/** The largest absolute difference between two arrays of the same length. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}

export type Feeds = Record<string, HostTensor>;
