/**
 * The browser implementation of OrtPlatform (ort-platform-types.ts): onnxruntime-web's WebGPU
 * build (`onnxruntime-web/webgpu`: the native WebGPU provider, and the wasm CPU provider, which
 * onnxruntime-web runs for 'cpu'). The browser build (src/browser/build.ts) puts this module in
 * place of ort-platform.ts; nothing here touches Node.
 */
import * as ort from 'onnxruntime-web/webgpu';
import { DeviceError, type Device, type DeviceRequest } from './device-types.js';
import type { OrtPlatform } from './ort-platform-types.js';

/** The parts of the DOM's navigator used here (the project's types do not include the DOM library). */
interface BrowserNavigator {
  hardwareConcurrency?: number;
  gpu?: { requestAdapter(): Promise<unknown> };
}
const nav = (): BrowserNavigator => ((globalThis as { navigator?: BrowserNavigator }).navigator ?? {});

let adapter: Promise<boolean> | undefined;
/** Whether this browser gives a WebGPU adapter (asked once). */
function hasWebGpu(): Promise<boolean> {
  adapter ??= (async () => {
    const gpu = nav().gpu;
    if (!gpu) return false;
    try {
      return (await gpu.requestAdapter()) != null;
    } catch {
      return false;
    }
  })();
  return adapter;
}

async function resolveDevice(request: DeviceRequest = 'cpu'): Promise<Device> {
  if (request === 'cpu') return 'cpu';
  if (request === 'cuda') throw new DeviceError('device cuda: a browser has no CUDA; use webgpu, or cpu (wasm)');
  if (await hasWebGpu()) return 'webgpu';
  if (request === 'auto') return 'cpu';
  throw new DeviceError('device webgpu: this browser gives no WebGPU adapter (Chrome/Edge 113+ with a GPU; headless Chromium needs --enable-unsafe-webgpu); use cpu (wasm)');
}

export const platform: OrtPlatform = {
  name: 'browser',
  ort,
  writesPreallocatedOutputs: false,
  cores: () => nav().hardwareConcurrency ?? 1,
  resolveDevice,
};

/** onnxruntime-web's settings: where its .wasm files are served, and its wasm threads (1 unless the page is cross-origin isolated). */
export function configureOrtWeb(options: { wasmPaths?: string; numThreads?: number }): void {
  if (options.wasmPaths !== undefined) ort.env.wasm.wasmPaths = options.wasmPaths;
  if (options.numThreads !== undefined) ort.env.wasm.numThreads = options.numThreads;
}
