/**
 * Serialises a graph to an ONNX ModelProto (opset 18) with onnx-proto's protobuf encoder.
 * Engine ops map to ONNX ops one to one, except where ONNX wants attributes as inputs (reduce
 * axes, slice bounds) and the float64 Erf, which ORT lacks and gets a composed form.
 */
import onnxProto from 'onnx-proto';
import { ONNX_DTYPE, type AnyTypedArray, type DType } from './dtype.js';
import type { AttrValue, Node, Tensor } from './graph.js';
import type { OpName } from './op-names.js';

const { onnx } = onnxProto;

export const OPSET = 18;

type IAttr = onnxProto.onnx.IAttributeProto;
type INode = onnxProto.onnx.INodeProto;
type ITensor = onnxProto.onnx.ITensorProto;

function rawBytes(data: AnyTypedArray): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

function tensorProto(name: string, dtype: DType, dims: readonly number[], data: AnyTypedArray): ITensor {
  return { name, dataType: ONNX_DTYPE[dtype], dims: [...dims], rawData: rawBytes(data) };
}

function attribute(name: string, value: AttrValue): IAttr {
  const T = onnx.AttributeProto.AttributeType;
  if (typeof value === 'number') {
    return Number.isInteger(value) ? { name, type: T.INT, i: value } : { name, type: T.FLOAT, f: value };
  }
  if (typeof value === 'string') return { name, type: T.STRING, s: new TextEncoder().encode(value) };
  if (value.length > 0 && typeof value[0] === 'string') {
    return { name, type: T.STRINGS, strings: (value as string[]).map((s) => new TextEncoder().encode(s)) };
  }
  return { name, type: T.INTS, ints: [...(value as number[])] };
}

function valueInfo(name: string, t: Tensor): onnxProto.onnx.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: ONNX_DTYPE[t.dtype],
        shape: { dim: t.shape.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

/** Nodes needed for `outputs`, inputs before users (iterative: graphs can be deep). */
export function reachableNodes(outputs: readonly Tensor[]): Node[] {
  const order: Node[] = [];
  const state = new Map<number, 1 | 2>();
  const stack: { node: Node; next: number }[] = [];
  const push = (t: Tensor): void => {
    if (t.node && !state.has(t.node.id)) {
      state.set(t.node.id, 1);
      stack.push({ node: t.node, next: 0 });
    }
  };
  for (const o of outputs) {
    push(o);
    while (stack.length) {
      const top = stack[stack.length - 1];
      if (top.next < top.node.inputs.length) push(top.node.inputs[top.next++]);
      else {
        stack.pop();
        state.set(top.node.id, 2);
        order.push(top.node);
      }
    }
  }
  return order;
}

class Emitter {
  readonly nodes: INode[] = [];
  readonly initializers: ITensor[] = [];
  private counter = 0;
  private readonly constNames = new Map<string, string>();

  fresh(hint: string): string {
    return `${hint}__${this.counter++}`;
  }

  node(opType: string, inputs: string[], attrs: IAttr[] = [], outputs: string[] = [this.fresh(opType)]): string[] {
    this.nodes.push({ opType, input: inputs, output: outputs, attribute: attrs, name: this.fresh(`n_${opType}`) });
    return outputs;
  }

  int64s(values: readonly number[]): string {
    const key = `i64:${values.join(',')}`;
    let name = this.constNames.get(key);
    if (!name) {
      name = this.fresh('c');
      this.initializers.push(tensorProto(name, 'int64', [values.length], BigInt64Array.from(values.map((v) => BigInt(v)))));
      this.constNames.set(key, name);
    }
    return name;
  }

  scalar(value: number, dtype: DType): string {
    const key = `${dtype}:${value}`;
    let name = this.constNames.get(key);
    if (!name) {
      name = this.fresh('c');
      const data = dtype === 'float64' ? Float64Array.of(value) : Float32Array.of(value);
      this.initializers.push(tensorProto(name, dtype, [], data));
      this.constNames.set(key, name);
    }
    return name;
  }
}

const INT64_MAX = '9223372036854775807';

/**
 * erf for float64 graphs: ORT's CPU provider has no double Erf kernel. Maclaurin series in x²
 * (Horner form, 80 terms) on x clamped to [-4, 4]: exact to ~1e-12 there, and |erf(±4) - ±1| <
 * 2e-8 beyond. float64 graphs exist for gradient checks, where inputs are O(1).
 */
function emitErfFloat64(e: Emitter, x: string, out: string): void {
  const [xc] = e.node('Clip', [x, e.scalar(-4, 'float64'), e.scalar(4, 'float64')]);
  const [x2] = e.node('Mul', [xc, xc]);
  const terms = 80;
  // coefficient of x^(2n+1): 2/sqrt(pi) (-1)^n / (n! (2n+1))
  const coef: number[] = [];
  let fact = 1;
  for (let n = 0; n < terms; n++) {
    if (n > 0) fact *= n;
    coef.push(((2 / Math.sqrt(Math.PI)) * (n % 2 ? -1 : 1)) / (fact * (2 * n + 1)));
  }
  let acc = e.scalar(coef[terms - 1], 'float64');
  for (let n = terms - 2; n >= 0; n--) {
    const [m] = e.node('Mul', [acc, x2]);
    [acc] = e.node('Add', [m, e.scalar(coef[n], 'float64')]);
  }
  e.node('Mul', [acc, xc], [], [out]);
}

/**
 * log-sum-exp as max/sub/exp/sum/log: ORT's ReduceLogSumExp kernel is scalar code, about 6x
 * slower than these vectorised passes on a [tokens, vocab] tensor (measured on CPU).
 */
function emitLogSumExp(e: Emitter, x: string, axes: number[], keepDims: boolean, out: string): void {
  const axesName = e.int64s(axes);
  const keep = [attribute('keepdims', 1)];
  const [m] = e.node('ReduceMax', [x, axesName], keep);
  const [shifted] = e.node('Sub', [x, m]);
  const [ex] = e.node('Exp', [shifted]);
  const [s] = e.node('ReduceSum', [ex, axesName], keep);
  const [l] = e.node('Log', [s]);
  if (keepDims) e.node('Add', [l, m], [], [out]);
  else {
    const [sum] = e.node('Add', [l, m]);
    e.node('Squeeze', [sum, axesName], [], [out]);
  }
}

export interface ExportOptions {
  graphName?: string;
  /**
   * Graph inputs to store as initializers instead (a model's weights, exported for inference):
   * input name -> value, the shape being the input's (which must be static).
   */
  initializers?: ReadonlyMap<string, AnyTypedArray>;
  /**
   * Store those initializers' bytes outside the model (ONNX external data, needed past
   * protobuf's 2 GiB): each is appended to `parts` and referenced by `location` (a file name
   * relative to the .onnx file) with its offset and length.
   */
  externalData?: { location: string; parts: Uint8Array[] };
}

/** An initializer whose bytes live in an external data file at `offset`. */
function externalTensorProto(name: string, t: Tensor, data: AnyTypedArray, ext: { location: string; parts: Uint8Array[] }, offset: number): ITensor {
  return {
    name,
    dataType: ONNX_DTYPE[t.dtype],
    dims: staticDims(t),
    dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
    externalData: [
      { key: 'location', value: ext.location },
      { key: 'offset', value: String(offset) },
      { key: 'length', value: String(data.byteLength) },
    ],
  };
}

/** Builds the ModelProto bytes computing `outputs` (name -> tensor) from the graph's inputs. */
export function toOnnxBytes(outputs: Readonly<Record<string, Tensor>>, options: ExportOptions = {}): Uint8Array {
  const outTensors = Object.values(outputs);
  if (outTensors.length === 0) throw new Error('export: no outputs');
  const graph = outTensors[0].graph;
  for (const name of Object.keys(outputs)) {
    if (graph.inputs.some((t) => t.name === name)) {
      throw new Error(`export: output name '${name}' is also the name of a graph input; rename the output`);
    }
  }
  const nodes = reachableNodes(outTensors);
  const e = new Emitter();
  const names = new Map<number, string>();
  const nameOf = (t: Tensor): string => {
    let n = names.get(t.id);
    if (n) return n;
    n = t.kind === 'input' ? (t.name as string) : `t${t.id}`;
    names.set(t.id, n);
    if (t.kind === 'constant') e.initializers.push(tensorProto(n, t.dtype, staticDims(t), t.value as AnyTypedArray));
    return n;
  };

  // An output computed by a node is written under its output name directly: an Identity would
  // make ONNX Runtime compute it into a temporary and copy it (for an optimizer state that is
  // also read by the update, every step, at parameter size).
  for (const [name, t] of Object.entries(outputs)) if (t.kind === 'op' && !names.has(t.id)) names.set(t.id, name);

  for (const n of nodes) {
    const ins = n.inputs.map(nameOf);
    const outs = n.outputs.map(nameOf);
    emitNode(e, n, ins, outs);
  }

  const usedInputs = new Set<number>();
  for (const n of nodes) for (const x of n.inputs) if (x.kind === 'input') usedInputs.add(x.id);
  const outputInfos = Object.entries(outputs).map(([name, t]) => {
    if (nameOf(t) !== name) e.node('Identity', [nameOf(t)], [], [name]);
    if (t.kind === 'input') usedInputs.add(t.id);
    return valueInfo(name, t);
  });
  const stored = options.initializers ?? new Map<string, AnyTypedArray>();
  const isStored = (t: Tensor): boolean => stored.has(t.name as string);
  let externalOffset = options.externalData?.parts.reduce((n, p) => n + p.byteLength, 0) ?? 0;
  for (const t of graph.inputs.filter((x) => usedInputs.has(x.id) && isStored(x))) {
    const name = t.name as string;
    const data = stored.get(name) as AnyTypedArray;
    const expected = staticDims(t).reduce((a, b) => a * b, 1);
    if (data.length !== expected) throw new Error(`export: initializer '${name}' has ${data.length} values, its input ${t} needs ${expected}`);
    const ext = options.externalData;
    if (ext) {
      e.initializers.push(externalTensorProto(name, t, data, ext, externalOffset));
      ext.parts.push(rawBytes(data));
      externalOffset += data.byteLength;
    } else e.initializers.push(tensorProto(name, t.dtype, staticDims(t), data));
  }
  const model: onnxProto.onnx.IModelProto = {
    irVersion: 8,
    producerName: 'dpo-ts',
    opsetImport: [{ domain: '', version: OPSET }],
    graph: {
      name: options.graphName ?? graph.name,
      node: e.nodes,
      initializer: e.initializers,
      input: graph.inputs.filter((t) => usedInputs.has(t.id) && !isStored(t)).map((t) => valueInfo(t.name as string, t)),
      output: outputInfos,
    },
  };
  return onnx.ModelProto.encode(onnx.ModelProto.create(model)).finish();
}

function staticDims(t: Tensor): number[] {
  return t.shape.map((d) => {
    if (typeof d !== 'number') throw new Error(`constant ${t} must have a static shape`);
    return d;
  });
}

/** Emits the ONNX nodes computing engine node `n` (input names `ins`) into `outs`. */
export type Lowering = (e: Emitter, n: Node, ins: string[], outs: string[]) => void;

/** The ONNX op of the same name, the node's attributes as its attributes. */
const asIs: Lowering = (e, n, ins, outs) => {
  e.node(n.op, ins, Object.entries(n.attrs).map(([k, v]) => attribute(k, v)), outs);
};

/** Reductions: ONNX (opset 18) takes the axes as an input. */
const reduction: Lowering = (e, n, ins, outs) => {
  e.node(n.op, [ins[0], e.int64s(n.attrs.axes as number[])], [attribute('keepdims', n.attrs.keepdims as number)], outs);
};

/** Squeeze / Unsqueeze: the axes as an input. */
const axesInput: Lowering = (e, n, ins, outs) => {
  e.node(n.op, [ins[0], e.int64s(n.attrs.axes as number[])], [], outs);
};

/**
 * How each engine op becomes ONNX, typed by the op list: an op without a lowering, or a lowering
 * under a name that is no op, does not compile.
 */
export type Lowerings = Record<OpName, Lowering>;

const LOWERINGS: Lowerings = {
  Add: asIs, Sub: asIs, Mul: asIs, Div: asIs, Pow: asIs, Max: asIs, Min: asIs,
  Less: asIs, LessOrEqual: asIs, Greater: asIs, GreaterOrEqual: asIs, Equal: asIs, And: asIs, Or: asIs, Not: asIs,
  Neg: asIs, Exp: asIs, Log: asIs, Tanh: asIs, Sigmoid: asIs, Sqrt: asIs, Reciprocal: asIs, Abs: asIs, Relu: asIs,
  Sin: asIs, Cos: asIs, Identity: asIs, Where: asIs,
  Erf: (e, n, ins, outs) => {
    if (n.inputs[0].dtype === 'float64') emitErfFloat64(e, ins[0], outs[0]);
    else asIs(e, n, ins, outs);
  },
  StopGradient: (e, _n, ins, outs) => {
    e.node('Identity', ins, [], outs);
  },
  Cast: (e, n, ins, outs) => {
    e.node('Cast', ins, [attribute('to', ONNX_DTYPE[n.attrs.to as DType])], outs);
  },

  ReduceSum: reduction, ReduceSumSquare: reduction, ReduceMax: reduction, ReduceProd: reduction, ReduceMean: reduction,
  ReduceLogSumExp: (e, n, ins, outs) => {
    emitLogSumExp(e, ins[0], n.attrs.axes as number[], n.attrs.keepdims === 1, outs[0]);
  },

  MatMul: asIs, Gemm: asIs, Softmax: asIs, Dropout: asIs,

  Shape: asIs, Range: asIs,
  ConstantOfShape: (e, n, ins, outs) => {
    const a = n.attrs;
    const dtype = a.dtype as DType;
    // A float fill is a scalar Expand: the same values, and WebGPU runs Expand while it leaves
    // ConstantOfShape to the CPU (a zeros tensor copied to the GPU on every run).
    if (dtype === 'float32' || dtype === 'float64') {
      e.node('Expand', [e.scalar(a.value as number, dtype), ins[0]], [], outs);
      return;
    }
    const one = dtype === 'int64' ? BigInt64Array.of(BigInt(a.value as number)) : dtype === 'int32' ? Int32Array.of(a.value as number) : Uint8Array.of(a.value as number);
    e.node('ConstantOfShape', ins, [{ name: 'value', type: onnx.AttributeProto.AttributeType.TENSOR, t: tensorProto('value', dtype, [1], one) }], outs);
  },

  Reshape: (e, n, ins, outs) => {
    // Shapes computed at run time hold real sizes, 0 included (an empty chunk of rows): ONNX's
    // default would read a 0 as "copy this dim from the input".
    e.node('Reshape', ins, n.inputs[1].kind === 'constant' ? [] : [attribute('allowzero', 1)], outs);
  },
  Slice: (e, n, ins, outs) => {
    const a = n.attrs;
    const end = a.end as number;
    const endName = end >= Number.MAX_SAFE_INTEGER ? int64MaxConst(e) : e.int64s([end]);
    e.node('Slice', [ins[0], e.int64s([a.start as number]), endName, e.int64s([a.axis as number])], [], outs);
  },
  Unsqueeze: axesInput, Squeeze: axesInput,
  Transpose: asIs, Concat: asIs, Split: asIs, Expand: asIs, Pad: asIs,

  Gather: asIs, GatherElements: asIs, ScatterElements: asIs, ScatterND: asIs, GatherND: asIs,

  Checkpoint: (e, _n, ins, outs) => {
    // The wrapped results pass through; the other inputs matter to the gradient rule only.
    outs.forEach((o, i) => e.node('Identity', [ins[i]], [], [o]));
  },
};

/** The ops that have a lowering, as the table holds them at run time (for the coverage test). */
export function loweredOps(): string[] {
  return Object.keys(LOWERINGS);
}

function emitNode(e: Emitter, n: Node, ins: string[], outs: string[]): void {
  // A node whose op name was forced past the types (a cast) goes to ONNX Runtime as it is, which
  // names the op it does not know.
  const lower = Object.hasOwn(LOWERINGS, n.op) ? LOWERINGS[n.op] : asIs;
  lower(e, n, ins, outs);
}

function int64MaxConst(e: Emitter): string {
  const name = `c_int64_max`;
  if (!e.initializers.some((t) => t.name === name)) {
    e.initializers.push({ name, dataType: ONNX_DTYPE.int64, dims: [1], rawData: rawBytes(BigInt64Array.of(BigInt(INT64_MAX))) });
  }
  return name;
}
