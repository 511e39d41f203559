/**
 * What the runtime (runtime.ts) needs of the platform it runs on: an ONNX Runtime binding, the
 * core count, and a device check. Two implementations: ort-platform.ts (Node: onnxruntime-node)
 * and ort-platform.browser.ts (onnxruntime-web, WebGPU and wasm), which the browser build
 * (src/browser/build.ts) puts in place of the Node one. Both bindings share onnxruntime-common's
 * Tensor and InferenceSession.
 */
import type { InferenceSession, Tensor } from 'onnxruntime-common';
import type { Device, DeviceRequest } from './device-types.js';

export interface OrtPlatform {
  /** 'node' or 'browser'. */
  readonly name: string;
  readonly ort: { readonly Tensor: typeof Tensor; readonly InferenceSession: typeof InferenceSession };
  /**
   * Whether a run writes outputs into the tensors given for them (onnxruntime-node 1.30 does, and
   * also returns a copy); onnxruntime-web 1.30's wasm backend leaves a
   * preallocated CPU output unwritten, so runtime.ts asks it for new tensors and copies them into
   * the caller's buffers.
   */
  readonly writesPreallocatedOutputs: boolean;
  /** Cores this process may use (threads beyond it only contend). */
  cores(): number;
  /** `request` made concrete; throws DeviceError for a device that cannot be used here. */
  resolveDevice(request?: DeviceRequest): Promise<Device>;
  /**
   * Opens a session through the on-disk compile cache (Node: compile-cache.ts; absent in the
   * browser). `setting` is RuntimeOptions.compileCache; `create` makes a session from model bytes.
   */
  openCached?(
    bytes: Uint8Array,
    sessionOptions: InferenceSession.SessionOptions,
    setting: string | boolean | undefined,
    create: (model: Uint8Array, options: InferenceSession.SessionOptions) => Promise<InferenceSession>,
  ): Promise<CompileCacheUse>;
}

/** A session and what the compile cache did: 'hit', 'miss' (stored), 'corrupt' (rebuilt), 'off'. */
export interface CompileCacheUse {
  session: InferenceSession;
  cache: 'hit' | 'miss' | 'corrupt' | 'off';
}
