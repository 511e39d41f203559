/**
 * Compiles graphs into ONNX Runtime sessions once and runs them many times. Dynamic dims stay
 * dynamic, so one compiled step serves every batch and sequence length.
 */
import type * as ort from 'onnxruntime-common';
import { allocate, dtypeOfArray, type AnyTypedArray, type DType } from './dtype.js';
import * as op from './ops.js';
import { staticSize } from './shape.js';
import type { Tensor } from './graph.js';
import { OPSET, toOnnxBytes } from './onnx-export.js';
import { dimSizes, matmulFlops, type MatmulFlops } from './flops.js';
import { DeviceError, type Device, type DeviceRequest } from './device-types.js';
import { platform } from './ort-platform.js';
import type { CompileCacheUse } from './ort-platform-types.js';

export type ExecutionProvider = Device;

export interface RuntimeOptions {
  /** Intra-op threads, capped at the cores this process may use (more only slow it down); default: all cores ORT sees. */
  threads?: number;
  /** Where the graph runs (device.ts); default 'cpu'. */
  executionProvider?: DeviceRequest;
  /** ORT graph optimisation level; default 'all' (fuses MatMul+Transpose, GELU, LayerNorm). */
  optimizationLevel?: 'disabled' | 'basic' | 'extended' | 'all';
  /** Write ORT's optimised model here (to see what fused); such a compile bypasses the compile cache. */
  optimizedModelPath?: string;
  /**
   * The compile cache's folder (compile-cache.ts: ORT's optimised models on disk, so a graph
   * compiled before opens without ORT's optimisation passes), true for its default folder
   * (`compiled/` in $DPO_TS_CACHE or ~/.cache/dpo-ts), or false to compile afresh. Default:
   * $DPO_TS_COMPILE_CACHE ('on', a folder, or unset/'off': none). Opt-in, because a session opened
   * from a cached model can peak higher in memory. CPU execution provider only.
   */
  compileCache?: string | boolean;
  /** Write ORT's per-node profile (JSON) with this file prefix. */
  profilePrefix?: string;
  /**
   * Outputs with a static shape of at least `outputChunkMinBytes` come out of ONNX Runtime in
   * chunks of at most this many elements, written into views of one host array (the caller's
   * `into` buffer, or one fresh array), so callers still see one array per output. Why:
   * onnxruntime-node 1.30 hands every output back as a copy in a freshly allocated ArrayBuffer,
   * even a preallocated one; a fresh buffer above glibc's largest mmap threshold (32 MiB) is new
   * pages on every run, and the page faults then cost far more than the copy (measured on the
   * 2-core VM under load: one 80 MB output 1.3-1.5 s per run as one piece, ~0.1 s in 1 MiB
   * chunks; see bench/trainstep.ts). Chunks cost one extra copy inside ORT (a Split), which is
   * why smaller outputs are left whole. Default 262144 (1 MiB of float32); 0 disables.
   */
  outputChunkElements?: number;
  /** Smallest output (bytes) that is fetched in chunks; default 32 MiB. */
  outputChunkMinBytes?: number;
  /**
   * ORT's CPU memory arena (default true). The arena keeps every block it ever grew to, so a
   * graph whose tensors are few and short-lived (the optimizer update) holds less memory
   * without it.
   */
  memoryArena?: boolean;
  /**
   * ORT's memory pattern (default false): it plans one block per input shape it has seen and keeps
   * them all, which with dynamic batch and sequence lengths only grows. Off, a gpt2-124m DPO step
   * peaks at 8.0 GB instead of 11.1 GB at the same speed (bench/dpo.ts).
   */
  memoryPattern?: boolean;
}

/** Default for RuntimeOptions.outputChunkElements. */
export const DEFAULT_OUTPUT_CHUNK_ELEMENTS = 1 << 18;
/** Default for RuntimeOptions.outputChunkMinBytes: glibc's largest mmap threshold. */
export const DEFAULT_OUTPUT_CHUNK_MIN_BYTES = 32 << 20;

const BYTES: Record<DType, number> = { float32: 4, float64: 8, float16: 2, int64: 8, int32: 4, bool: 1 };

interface ChunkedOutput {
  dtype: DType;
  dims: readonly number[];
  size: number;
  chunks: { name: string; offset: number; size: number }[];
}

function view(a: AnyTypedArray, start: number, end: number): AnyTypedArray {
  return (a as Float32Array).subarray(start, end) as AnyTypedArray;
}

/** A host array with its shape: what goes into and comes out of a compiled graph. */
export interface HostTensor<A extends AnyTypedArray = AnyTypedArray> {
  data: A;
  dims: readonly number[];
}

const ORT_TYPE: Record<DType, ort.Tensor.Type> = {
  float32: 'float32',
  float64: 'float64',
  float16: 'float16',
  int64: 'int64',
  int32: 'int32',
  bool: 'bool',
};

function toOrt(t: HostTensor | DeviceTensor): ort.Tensor {
  if (t instanceof DeviceTensor) return t.value;
  return new platform.ort.Tensor(ORT_TYPE[dtypeOfArray(t.data)], t.data, [...t.dims]);
}

/**
 * A tensor kept in the device's memory between runs (WebGPU: a GPU buffer), fed as is to later
 * runs of graphs on the same device. Its values are read back only through a graph with a host
 * output (TrainStep.sync): onnxruntime-node aborts the process on getData() of a GPU tensor.
 */
export class DeviceTensor {
  /** @internal */
  constructor(readonly value: ort.Tensor) {}

  get dims(): readonly number[] {
    return this.value.dims;
  }

  /** Frees the device memory now (it is not garbage collected promptly). */
  dispose(): void {
    this.value.dispose();
  }
}

/** A graph input: host memory, or a tensor already on the graph's device. */
export type Feed = HostTensor | DeviceTensor;

/** Compile-time choices of one graph. */
export interface CompileOptions {
  /** Outputs that stay on the device (WebGPU) for later runs; elsewhere they come back as host arrays. */
  deviceOutputs?: readonly string[];
}

/** Where one compile's time went (bench/dpo.ts --startup prints these). */
export interface CompileStats {
  /** Serialising the traced graph to ONNX bytes (ms). */
  exportMs: number;
  /** ONNX Runtime's InferenceSession creation: parsing, optimisation passes, kernel setup (ms). */
  sessionMs: number;
  /** Size of the ONNX model (bytes). */
  onnxBytes: number;
  /**
   * The compile cache (compile-cache.ts): 'hit' opened ORT's optimised model from disk, 'miss'
   * optimised and stored it, 'corrupt' found a damaged entry and rebuilt it, 'off' did not use it.
   */
  cache: 'hit' | 'miss' | 'corrupt' | 'off';
}

/**
 * An ONNX Runtime session for `bytes`, through the platform's compile cache where it applies (the
 * Node platform, compile-cache.ts: CPU, optimised graphs, no optimizedModelPath of the caller's).
 */
async function openSession(
  bytes: Uint8Array,
  sessionOptions: ort.InferenceSession.SessionOptions,
  device: Device,
  options: RuntimeOptions,
  graphName: string,
): Promise<CompileCacheUse> {
  const create = async (model: Uint8Array, so: ort.InferenceSession.SessionOptions): Promise<ort.InferenceSession> => {
    try {
      return await platform.ort.InferenceSession.create(model, so);
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      throw new Error(`compile: ONNX Runtime rejected graph '${graphName}' (ONNX opset ${OPSET}): ${msg}`, { cause: e });
    }
  };
  const cacheable = device === 'cpu' && sessionOptions.graphOptimizationLevel !== 'disabled' && !options.optimizedModelPath;
  if (!cacheable || !platform.openCached) return { session: await create(bytes, sessionOptions), cache: 'off' };
  return platform.openCached(bytes, sessionOptions, options.compileCache, create);
}

/** On WebGPU, buffers above this many bytes fail on SwiftShader and many adapters (named in errors). */
const WEBGPU_BUFFER_LIMIT = 2 ** 30;

export class CompiledGraph {
  private constructor(
    private readonly session: ort.InferenceSession,
    readonly inputNames: readonly string[],
    readonly outputNames: readonly string[],
    private readonly inputTypes: ReadonlyMap<string, Tensor>,
    private readonly chunked: ReadonlyMap<string, ChunkedOutput>,
    /** Where the graph runs. */
    readonly device: Device,
    private readonly onDevice: ReadonlySet<string>,
    private readonly outputTypes: Readonly<Record<string, Tensor>>,
    /** The traced graph's name (in errors). */
    readonly name: string,
    /** Where the compile's time went. */
    readonly stats: CompileStats,
  ) {}

  static async compile(outputs: Readonly<Record<string, Tensor>>, options: RuntimeOptions = {}, compileOptions: CompileOptions = {}): Promise<CompiledGraph> {
    const device = await platform.resolveDevice(options.executionProvider);
    const onDevice = new Set(device === 'webgpu' ? (compileOptions.deviceOutputs ?? []) : []);
    const chunkMax = options.outputChunkElements ?? DEFAULT_OUTPUT_CHUNK_ELEMENTS;
    const chunkMinBytes = options.outputChunkMinBytes ?? DEFAULT_OUTPUT_CHUNK_MIN_BYTES;
    const exported: Record<string, Tensor> = {};
    const chunked = new Map<string, ChunkedOutput>();
    for (const [name, t] of Object.entries(outputs)) {
      const n = staticSize(t.shape);
      if (onDevice.has(name) || !(chunkMax > 0 && n !== undefined && n > chunkMax && n * BYTES[t.dtype] >= chunkMinBytes)) {
        exported[name] = t;
        continue;
      }
      const sizes: number[] = [];
      for (let off = 0; off < n; off += chunkMax) sizes.push(Math.min(chunkMax, n - off));
      const parts = op.split(op.reshape(t, [n]), 0, sizes);
      const chunks = parts.map((part, j) => {
        const chunkName = `${name}__chunk${j}`;
        if (chunkName in outputs) throw new Error(`compile: output name '${chunkName}' is reserved for chunks of '${name}'`);
        exported[chunkName] = part;
        return { name: chunkName, offset: j * chunkMax, size: sizes[j] };
      });
      chunked.set(name, { dtype: t.dtype, dims: t.shape as readonly number[], size: n, chunks });
    }
    const exportStart = performance.now();
    const bytes = toOnnxBytes(exported);
    const exportMs = performance.now() - exportStart;
    const sessionOptions: ort.InferenceSession.SessionOptions = {
      graphOptimizationLevel: options.optimizationLevel ?? 'all',
      executionProviders: [device],
      executionMode: 'sequential',
      enableCpuMemArena: options.memoryArena ?? true,
      enableMemPattern: (options.memoryArena ?? true) && (options.memoryPattern ?? false),
    };
    // On WebGPU every output says where it goes: the ones kept for later runs stay in GPU buffers,
    // the rest (metrics, scores) come back to host memory.
    if (device === 'webgpu') sessionOptions.preferredOutputLocation = Object.fromEntries(Object.keys(exported).map((n) => [n, onDevice.has(n) ? 'gpu-buffer' : 'cpu']));
    if (options.threads) sessionOptions.intraOpNumThreads = sessionThreads(options.threads);
    if (options.optimizedModelPath) sessionOptions.optimizedModelFilePath = options.optimizedModelPath;
    if (options.profilePrefix) {
      sessionOptions.enableProfiling = true;
      sessionOptions.profileFilePrefix = options.profilePrefix;
    }
    const graph = Object.values(outputs)[0].graph;
    const sessionStart = performance.now();
    const opened = await openSession(bytes, sessionOptions, device, options, graph.name);
    const session = opened.session;
    const stats: CompileStats = { exportMs, sessionMs: performance.now() - sessionStart, onnxBytes: bytes.byteLength, cache: opened.cache };
    const inputs = new Map(graph.inputs.filter((t) => session.inputNames.includes(t.name as string)).map((t) => [t.name as string, t]));
    return new CompiledGraph(session, session.inputNames, Object.keys(outputs), inputs, chunked, device, onDevice, outputs, graph.name, stats);
  }

  /**
   * Runs the graph. Feeds not used by the compiled outputs are ignored. Outputs listed in `into`
   * are written into the given (correctly sized) host arrays instead of fresh ones.
   */
  async run(
    feeds: Readonly<Record<string, Feed>>,
    into: Readonly<Record<string, HostTensor>> = {},
  ): Promise<Record<string, HostTensor>> {
    if (this.onDevice.size) throw new Error('run: this graph keeps outputs on the device; use runOnDevice');
    return (await this.runOnDevice(feeds, into)).host;
  }

  /** {@link run} for a graph compiled with device outputs: those come back as DeviceTensors. */
  async runOnDevice(
    feeds: Readonly<Record<string, Feed>>,
    into: Readonly<Record<string, HostTensor>> = {},
  ): Promise<{ host: Record<string, HostTensor>; device: Record<string, DeviceTensor> }> {
    const ortFeeds: Record<string, ort.Tensor> = {};
    const namedDims = new Map<string, { size: number; input: string }>();
    for (const name of this.inputNames) {
      const f = feeds[name];
      if (!f) throw new Error(`run: missing input '${name}'`);
      const decl = this.inputTypes.get(name);
      if (decl) {
        checkFeed(name, decl, f);
        // A dim name means one size across all inputs of a run.
        decl.shape.forEach((d, i) => {
          if (typeof d !== 'string') return;
          const seen = namedDims.get(d);
          if (!seen) namedDims.set(d, { size: f.dims[i], input: name });
          else if (seen.size !== f.dims[i]) {
            throw new Error(`run: dim '${d}' is ${seen.size} in input '${seen.input}' but ${f.dims[i]} in input '${name}' (dim ${i})`);
          }
        });
      }
      ortFeeds[name] = toOrt(f);
    }
    const fetches: Record<string, ort.Tensor | null> = {};
    const targets = new Map<string, AnyTypedArray>();
    for (const name of this.outputNames) {
      const ch = this.chunked.get(name);
      if (!ch) {
        fetches[name] = into[name] && !this.onDevice.has(name) && platform.writesPreallocatedOutputs ? toOrt(into[name]) : null;
        continue;
      }
      const target = into[name]?.data ?? allocate(ch.dtype, ch.size);
      if (target.length !== ch.size || dtypeOfArray(target) !== ch.dtype) {
        throw new Error(`run: output buffer for '${name}' must be ${ch.dtype} with ${ch.size} elements, got ${dtypeOfArray(target)} with ${target.length}`);
      }
      targets.set(name, target);
      for (const c of ch.chunks) fetches[c.name] = platform.writesPreallocatedOutputs ? toOrt({ data: view(target, c.offset, c.offset + c.size), dims: [c.size] }) : null;
    }
    let result: ort.InferenceSession.OnnxValueMapType;
    try {
      result = await this.session.run(ortFeeds, fetches);
    } catch (e) {
      throw this.device === 'webgpu' ? this.webgpuFailure(e, feeds) : e;
    }
    const out: Record<string, HostTensor> = {};
    const device: Record<string, DeviceTensor> = {};
    for (const name of this.outputNames) {
      if (this.onDevice.has(name)) {
        device[name] = new DeviceTensor(result[name]);
        continue;
      }
      const target = targets.get(name);
      if (target) {
        if (!platform.writesPreallocatedOutputs) for (const c of this.chunked.get(name)?.chunks ?? []) copyInto(view(target, c.offset, c.offset + c.size), result[c.name]);
        out[name] = { data: target, dims: this.chunked.get(name)?.dims as readonly number[] };
        continue;
      }
      const r = result[name];
      if (into[name] && !platform.writesPreallocatedOutputs) copyInto(into[name].data, r);
      // A preallocated output was written in place; onnxruntime-node 1.30 also hands back a copy
      // of it (see train-step.ts), which is dropped here so that callers see their own buffer.
      out[name] = into[name] ? { data: into[name].data, dims: r.dims } : { data: r.data as AnyTypedArray, dims: r.dims };
    }
    return { host: out, device };
  }

  /**
   * A failed WebGPU run as one line: a tensor above the usual buffer limit is named (Dawn's own
   * message names neither the tensor nor, in the error ONNX Runtime returns, the limit).
   */
  private webgpuFailure(e: unknown, feeds: Readonly<Record<string, Feed>>): Error {
    const first = (e instanceof Error ? e.message : String(e)).split('\n')[0];
    const sizes: [string, number][] = [];
    for (const [name, f] of Object.entries(feeds)) {
      if (!this.inputNames.includes(name)) continue;
      const dtype = f instanceof DeviceTensor ? (f.value.type as DType) : dtypeOfArray(f.data);
      sizes.push([name, f.dims.reduce((a, b) => a * b, 1) * (BYTES[dtype] ?? 4)]);
    }
    for (const [name, t] of Object.entries(this.outputTypes)) {
      const n = staticSize(t.shape);
      if (n !== undefined) sizes.push([name, n * BYTES[t.dtype]]);
    }
    const [name, bytes] = sizes.reduce((a, b) => (b[1] > a[1] ? b : a), ['', 0]);
    if (bytes > WEBGPU_BUFFER_LIMIT) {
      return new DeviceError(
        `device webgpu: tensor '${name}' is ${bytes} bytes, above the WebGPU buffer limit of ${WEBGPU_BUFFER_LIMIT} bytes (1 GiB) that SwiftShader and many adapters have: use a smaller model, LoRA, or --device cpu|cuda (${first})`,
      );
    }
    return new DeviceError(`device webgpu: a run of graph '${this.name}' failed: ${first}`);
  }

  /**
   * The FLOPs of one run's matrix products with these feeds (flops.ts: counted from the graph's
   * MatMul and Gemm nodes at the feeds' sizes). Feeds need only cover the inputs with named dims.
   */
  matmulFlops(feeds: Readonly<Record<string, { dims: readonly number[] }>>): MatmulFlops {
    const outs = Object.values(this.outputTypes);
    return matmulFlops(outs, dimSizes(outs[0].graph.inputs, feeds));
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

/** A returned output copied into the caller's buffer (bindings that do not write preallocated outputs). */
function copyInto(target: AnyTypedArray, r: ort.Tensor): void {
  if (r.data !== target) (target as Float32Array).set(r.data as Float32Array);
}

function checkFeed(name: string, decl: Tensor, f: Feed): void {
  const dtype = f instanceof DeviceTensor ? f.value.type : dtypeOfArray(f.data);
  if (dtype !== decl.dtype) throw new Error(`run: input '${name}' must be ${decl.dtype}, got ${dtype}`);
  if (f.dims.length !== decl.rank) {
    throw new Error(`run: input '${name}' must have rank ${decl.rank} [${decl.shape.join(', ')}], got [${f.dims.join(', ')}]`);
  }
  decl.shape.forEach((d, i) => {
    if (typeof d === 'number' && f.dims[i] !== d) {
      throw new Error(`run: input '${name}' dim ${i} must be ${d}, got [${f.dims.join(', ')}]`);
    }
  });
  const n = f.dims.reduce((p, d) => p * d, 1);
  if (!(f instanceof DeviceTensor) && n !== f.data.length) throw new Error(`run: input '${name}' has ${f.data.length} elements for dims [${f.dims.join(', ')}]`);
}

/**
 * The intra-op thread count a session gets for `requested`: at most the cores this process may
 * run on (os.availableParallelism in Node), since more threads than cores only contend.
 */
export function sessionThreads(requested: number): number {
  return Math.max(1, Math.min(Math.floor(requested), platform.cores()));
}
