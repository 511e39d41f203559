/**
 * Which ONNX Runtime execution provider runs our graphs, and whether it can run here. A device
 * that is asked for and cannot be used fails with one line saying what to install or set, at the
 * first graph compiled for it (and once per process: the probe is cached).
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { Graph } from './graph.js';
import { toOnnxBytes } from './onnx-export.js';
import * as op from './ops.js';
import { DeviceError, type Device, type DeviceRequest } from './device-types.js';

export { DEVICE_REQUESTS, DeviceError, type Device, type DeviceRequest } from './device-types.js';

/** Where Debian's chromium package puts SwiftShader's Vulkan driver (a software WebGPU adapter). */
export const SWIFTSHADER_DIR = '/usr/lib/chromium';

/** The folder of onnxruntime-node's native libraries (where its CUDA provider libraries are installed). */
function ortLibraryDir(): string | undefined {
  try {
    const pkg = createRequire(import.meta.url).resolve('onnxruntime-node/package.json');
    return join(dirname(pkg), 'bin', 'napi-v6', process.platform, process.arch);
  } catch {
    return undefined;
  }
}

/** A one-node graph (y = x + x): enough for ONNX Runtime to create the provider and its device. */
function probeModel(): Uint8Array {
  const g = new Graph('device_probe');
  const x = g.input('x', 'float32', [1]);
  return toOnnxBytes({ y: op.add(x, x) });
}

const probes = new Map<Device, Promise<string | undefined>>();

/** Undefined when `device` can run a session here; otherwise why not and what to do, in one line. */
export function deviceProblem(device: Device): Promise<string | undefined> {
  let p = probes.get(device);
  if (!p) probes.set(device, (p = probe(device)));
  return p;
}

async function probe(device: Device): Promise<string | undefined> {
  if (device === 'cpu') return undefined;
  const libs = ortLibraryDir();
  if (device === 'cuda') {
    if (process.platform !== 'linux' && process.platform !== 'win32') return `CUDA is not available on ${process.platform}`;
    const lib = process.platform === 'win32' ? 'onnxruntime_providers_cuda.dll' : 'libonnxruntime_providers_cuda.so';
    if (!libs || !existsSync(join(libs, lib))) {
      return "onnxruntime-node's CUDA provider is not installed: reinstall it with ONNXRUNTIME_NODE_INSTALL=cuda12 (npm rebuild onnxruntime-node, with network access), on a machine with an NVIDIA driver, CUDA 12 and cuDNN 9";
    }
  }
  try {
    const session = await ort.InferenceSession.create(probeModel(), { executionProviders: [device], logSeverityLevel: 4 });
    await session.release();
    return undefined;
  } catch (e) {
    const msg = (e instanceof Error ? e.message : String(e)).split('\n')[0];
    if (device === 'cuda') return `the CUDA provider failed to start (${msg}): it needs an NVIDIA GPU and driver, CUDA 12 and cuDNN 9 libraries on the library path`;
    if (/adapter/i.test(msg)) {
      const software = existsSync(join(SWIFTSHADER_DIR, 'vk_swiftshader_icd.json'))
        ? `; without a GPU, SwiftShader (software) works: VK_ICD_FILENAMES=${SWIFTSHADER_DIR}/vk_swiftshader_icd.json LD_LIBRARY_PATH=${SWIFTSHADER_DIR}`
        : '';
      return `no WebGPU adapter: onnxruntime-node's WebGPU provider needs a GPU with a Vulkan driver (libvulkan1 and the vendor's driver) on Linux, Metal on macOS or D3D12 on Windows${software}`;
    }
    return `the ${device} provider failed to start: ${msg}`;
  }
}

/** `request` made concrete: 'auto' is the first usable of cuda and webgpu, else cpu. Throws DeviceError for an unusable device. */
export async function resolveDevice(request: DeviceRequest = 'cpu'): Promise<Device> {
  if (request === 'auto') {
    for (const d of ['cuda', 'webgpu'] as const) if ((await deviceProblem(d)) === undefined) return d;
    return 'cpu';
  }
  const problem = await deviceProblem(request);
  if (problem) throw new DeviceError(`device ${request}: ${problem}`);
  return request;
}
