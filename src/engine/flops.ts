/**
 * FLOPs a graph executes in its matrix products, counted from the graph itself: every MatMul and
 * Gemm node that the outputs need (the nodes that are exported to ONNX), at the sizes of one
 * run's inputs. So the count is what the step really does: no weight gradient where autodiff
 * built none (frozen weights, LoRA's base), the forwards gradient checkpointing recomputes, a
 * reference forward inside the graph, the lm_head chunks at their real row counts. A product
 * [..., m, k] x [..., k, n] counts 2·m·k·n per batch element (a multiply and an add); Gemm's
 * accumulation into C and every non-matmul op are not counted (the convention of MFU figures).
 */
import type { Tensor } from './graph.js';
import { reachableNodes } from './onnx-export.js';
import type { Dim } from './shape.js';

export interface MatmulFlops {
  /** 2·m·k·n summed over the MatMul and Gemm nodes. */
  total: number;
  /** The same by op. */
  byOp: { MatMul: number; Gemm: number };
  /** How many product nodes there are. */
  nodes: number;
  /**
   * The 2-D products (one matrix times another, e.g. activations times a weight) by shape
   * `m x k x n`, with their summed FLOPs and node count, most FLOPs first.
   */
  shapes: { m: number; k: number; n: number; flops: number; nodes: number }[];
}

/**
 * Evaluates a dim ("seq", "(batch*seq)+1", 7) with sizes for the named dims; throws on a name
 * without a size.
 */
export function evalDim(d: Dim, sizes: Readonly<Record<string, number>>): number {
  if (typeof d === 'number') return d;
  if (d in sizes) return sizes[d];
  const tokens = d.match(/\s*([A-Za-z_][\w.:]*|\d+|[-+*/()])/g)?.map((t) => t.trim()) ?? [];
  if (tokens.join('') !== d.replace(/\s+/g, '')) return unknown(d);
  let i = 0;
  const atom = (): number => {
    const t = tokens[i++];
    if (t === '(') {
      const v = sum();
      if (tokens[i++] !== ')') return unknown(d);
      return v;
    }
    if (t === '-') return -atom();
    if (t !== undefined && /^\d+$/.test(t)) return Number(t);
    if (t !== undefined && t in sizes) return sizes[t];
    return unknown(d, t);
  };
  const product = (): number => {
    let v = atom();
    while (tokens[i] === '*' || tokens[i] === '/') v = tokens[i++] === '*' ? v * atom() : v / atom();
    return v;
  };
  const sum = (): number => {
    let v = product();
    while (tokens[i] === '+' || tokens[i] === '-') v = tokens[i++] === '+' ? v + product() : v - product();
    return v;
  };
  const v = sum();
  return i === tokens.length ? v : unknown(d);
}

function unknown(d: string, name?: string): never {
  throw new Error(`matmulFlops: no size for dim '${name ?? d}'${name && name !== d ? ` (in '${d}')` : ''}`);
}

/**
 * The MatMul/Gemm FLOPs of computing `outputs` once, with `sizes` for the named dims. Dims a
 * Range makes (the lm_head's chunks) are worked out from their bounds when those are integer
 * arithmetic on shapes and constants.
 */
export function matmulFlops(outputs: readonly Tensor[], inputSizes: Readonly<Record<string, number>>): MatmulFlops {
  const out: MatmulFlops = { total: 0, byOp: { MatMul: 0, Gemm: 0 }, nodes: 0, shapes: [] };
  const nodes = reachableNodes(outputs);
  const byShape = new Map<string, MatmulFlops['shapes'][number]>();
  const sizes: Record<string, number> = { ...inputSizes };
  const values = new Map<number, number[]>();
  for (const n of nodes) {
    const d = n.outputs[0].shape[0];
    if (n.op !== 'Range' || typeof d !== 'string' || d in sizes) continue;
    const [start, limit, delta] = n.inputs.map((t) => intValue(t, sizes, values)[0]);
    sizes[d] = Math.max(0, Math.ceil((limit - start) / delta));
  }
  for (const n of nodes) {
    if (n.op !== 'MatMul' && n.op !== 'Gemm') continue;
    const [a] = n.inputs;
    const y = n.outputs[0];
    const k = n.op === 'Gemm' && n.attrs.transA === 1 ? a.shape[0] : a.shape[a.rank - 1];
    // The output's dims are the batch dims, m and n: 2·k per output element.
    const f = 2 * evalDim(k, sizes) * y.shape.reduce<number>((p, d) => p * evalDim(d, sizes), 1);
    out.byOp[n.op] += f;
    out.total += f;
    out.nodes++;
    if (y.rank === 2 && n.inputs[1].rank === 2 && a.rank === 2) {
      const [m, cols] = y.shape.map((d) => evalDim(d, sizes));
      const key = `${m}x${evalDim(k, sizes)}x${cols}`;
      const e = byShape.get(key) ?? { m, k: evalDim(k, sizes), n: cols, flops: 0, nodes: 0 };
      e.flops += f;
      e.nodes++;
      byShape.set(key, e);
    }
  }
  out.shapes = [...byShape.values()].sort((x, y) => y.flops - x.flops);
  return out;
}

/**
 * The value of a small integer tensor computed from shapes and constants (flat), for the bounds
 * of a Range; throws on anything else.
 */
function intValue(t: Tensor, sizes: Readonly<Record<string, number>>, memo: Map<number, number[]>): number[] {
  const hit = memo.get(t.id);
  if (hit) return hit;
  const v = computeInt(t, sizes, memo);
  memo.set(t.id, v);
  return v;
}

function computeInt(t: Tensor, sizes: Readonly<Record<string, number>>, memo: Map<number, number[]>): number[] {
  if (t.kind === 'constant' && t.value) return Array.from(t.value as ArrayLike<number | bigint>, Number);
  const n = t.node;
  if (!n) throw new Error(`matmulFlops: ${t.toString()} is a graph input, not a size`);
  const arg = (i: number): number[] => intValue(n.inputs[i], sizes, memo);
  const binary = (f: (a: number, b: number) => number): number[] => {
    const [a, b] = [arg(0), arg(1)];
    return Array.from({ length: Math.max(a.length, b.length) }, (_, i) => f(a[a.length === 1 ? 0 : i], b[b.length === 1 ? 0 : i]));
  };
  switch (n.op) {
    case 'Shape': {
      const dims = n.inputs[0].shape.map((d) => evalDim(d, sizes));
      const start = typeof n.attrs.start === 'number' ? n.attrs.start : 0;
      const end = typeof n.attrs.end === 'number' ? n.attrs.end : dims.length;
      return dims.slice(start, end);
    }
    case 'Reshape':
    case 'Squeeze':
    case 'Unsqueeze':
    case 'Identity':
    case 'Cast':
      return arg(0);
    case 'Concat':
      return n.inputs.flatMap((_, i) => arg(i));
    case 'Gather': {
      const data = arg(0);
      return arg(1).map((i) => data[i < 0 ? i + data.length : i]);
    }
    case 'Add':
      return binary((a, b) => a + b);
    case 'Sub':
      return binary((a, b) => a - b);
    case 'Mul':
      return binary((a, b) => a * b);
    case 'Div':
      return binary((a, b) => Math.trunc(a / b));
    case 'Min':
      return binary(Math.min);
    case 'Max':
      return binary(Math.max);
    case 'ReduceProd':
      return [arg(0).reduce((p, x) => p * x, 1)];
    default:
      throw new Error(`matmulFlops: cannot work out a size computed by ${n.op}`);
  }
}

/** Sizes of the named dims of `inputs` as fed (the first input that has a name gives its size). */
export function dimSizes(inputs: readonly Tensor[], feeds: Readonly<Record<string, { dims: readonly number[] }>>): Record<string, number> {
  const sizes: Record<string, number> = {};
  for (const t of inputs) {
    const f = t.name === undefined ? undefined : feeds[t.name];
    if (!f) continue;
    t.shape.forEach((d, i) => {
      if (typeof d === 'string' && !(d in sizes)) sizes[d] = f.dims[i];
    });
  }
  return sizes;
}
