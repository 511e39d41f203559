import { existsSync } from 'node:fs';
import { defineConfig } from 'vitest/config';

// The WebGPU tests (test/webgpu) need a WebGPU adapter. Without a GPU, SwiftShader's Vulkan driver
// from Debian's chromium package is one; the Vulkan loader reads these at process start, so they
// are set here, before vitest forks its workers (a Vulkan setup of the user's own is kept).
const SWIFTSHADER = '/usr/lib/chromium';
if (!process.env.VK_ICD_FILENAMES && existsSync(`${SWIFTSHADER}/vk_swiftshader_icd.json`)) {
  process.env.VK_ICD_FILENAMES = `${SWIFTSHADER}/vk_swiftshader_icd.json`;
  process.env.LD_LIBRARY_PATH = [process.env.LD_LIBRARY_PATH, SWIFTSHADER].filter(Boolean).join(':');
}

// The compile cache (src/engine/compile-cache.ts) stays off in tests unless asked for, so the suite
// neither writes into ~/.cache nor times differently on a second run; its own test passes a folder.
process.env.DPO_TS_COMPILE_CACHE ??= 'off';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'src/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // onnxruntime sessions are multi-threaded already; two workers fill the 2-core CI machine.
    pool: 'forks',
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
  },
});
