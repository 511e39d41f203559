/**
 * Compiles graphs into ONNX Runtime sessions once and runs them many times. Dynamic dims stay
 * dynamic, so one compiled step serves every batch and sequence length.
 */
import * as ort from 'onnxruntime-node';
import { dtypeOfArray, type AnyTypedArray, type DType } from './dtype.js';
import type { Tensor } from './graph.js';
import { OPSET, toOnnxBytes } from './onnx-export.js';

export type ExecutionProvider = 'cpu' | 'cuda';

export interface RuntimeOptions {
  /** Intra-op threads; default: all cores ORT sees. */
  threads?: number;
  executionProvider?: ExecutionProvider;
  /** ORT graph optimisation level; default 'all' (fuses MatMul+Transpose, GELU, LayerNorm). */
  optimizationLevel?: 'disabled' | 'basic' | 'extended' | 'all';
  /** Write ORT's optimised model here (to see what fused). */
  optimizedModelPath?: string;
  /** Write ORT's per-node profile (JSON) with this file prefix. */
  profilePrefix?: string;
}

/** A host array with its shape: what goes into and comes out of a compiled graph. */
export interface HostTensor<A extends AnyTypedArray = AnyTypedArray> {
  data: A;
  dims: readonly number[];
}

const ORT_TYPE: Record<DType, ort.Tensor.Type> = {
  float32: 'float32',
  float64: 'float64',
  int64: 'int64',
  int32: 'int32',
  bool: 'bool',
};

function toOrt(t: HostTensor): ort.Tensor {
  return new ort.Tensor(ORT_TYPE[dtypeOfArray(t.data)], t.data, [...t.dims]);
}

export class CompiledGraph {
  private constructor(
    private readonly session: ort.InferenceSession,
    readonly inputNames: readonly string[],
    readonly outputNames: readonly string[],
    private readonly inputTypes: ReadonlyMap<string, Tensor>,
  ) {}

  static async compile(outputs: Readonly<Record<string, Tensor>>, options: RuntimeOptions = {}): Promise<CompiledGraph> {
    const bytes = toOnnxBytes(outputs);
    const sessionOptions: ort.InferenceSession.SessionOptions = {
      graphOptimizationLevel: options.optimizationLevel ?? 'all',
      executionProviders: [options.executionProvider ?? 'cpu'],
      executionMode: 'sequential',
      enableCpuMemArena: true,
      enableMemPattern: true,
    };
    if (options.threads) sessionOptions.intraOpNumThreads = options.threads;
    if (options.optimizedModelPath) sessionOptions.optimizedModelFilePath = options.optimizedModelPath;
    if (options.profilePrefix) {
      sessionOptions.enableProfiling = true;
      sessionOptions.profileFilePrefix = options.profilePrefix;
    }
    const graph = Object.values(outputs)[0].graph;
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(bytes, sessionOptions);
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      throw new Error(`compile: ONNX Runtime rejected graph '${graph.name}' (ONNX opset ${OPSET}): ${msg}`, { cause: e });
    }
    const inputs = new Map(graph.inputs.filter((t) => session.inputNames.includes(t.name as string)).map((t) => [t.name as string, t]));
    return new CompiledGraph(session, session.inputNames, session.outputNames, inputs);
  }

  /**
   * Runs the graph. Feeds not used by the compiled outputs are ignored. Outputs listed in `into`
   * are written into the given (correctly sized) host arrays instead of fresh ones.
   */
  async run(
    feeds: Readonly<Record<string, HostTensor>>,
    into: Readonly<Record<string, HostTensor>> = {},
  ): Promise<Record<string, HostTensor>> {
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
    for (const name of this.outputNames) fetches[name] = into[name] ? toOrt(into[name]) : null;
    const result = await this.session.run(ortFeeds, fetches);
    const out: Record<string, HostTensor> = {};
    for (const name of this.outputNames) {
      const r = result[name];
      // A preallocated output was written in place; onnxruntime-node 1.30 also hands back a copy
      // of it (see train-step.ts), which is dropped here so that callers see their own buffer.
      out[name] = into[name] ? { data: into[name].data, dims: r.dims } : { data: r.data as AnyTypedArray, dims: r.dims };
    }
    return out;
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

function checkFeed(name: string, decl: Tensor, f: HostTensor): void {
  const dtype = dtypeOfArray(f.data);
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
  if (n !== f.data.length) throw new Error(`run: input '${name}' has ${f.data.length} elements for dims [${f.dims.join(', ')}]`);
}
