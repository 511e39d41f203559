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

/** The MatMul/Gemm FLOPs of computing `outputs` once, with `sizes` for the named dims. */
export function matmulFlops(outputs: readonly Tensor[], sizes: Readonly<Record<string, number>>): MatmulFlops {
  const out: MatmulFlops = { total: 0, byOp: { MatMul: 0, Gemm: 0 }, nodes: 0 };
  for (const n of reachableNodes(outputs)) {
    if (n.op !== 'MatMul' && n.op !== 'Gemm') continue;
    const [a] = n.inputs;
    const y = n.outputs[0];
    const k = n.op === 'Gemm' && n.attrs.transA === 1 ? a.shape[0] : a.shape[a.rank - 1];
    // The output's dims are the batch dims, m and n: 2·k per output element.
    const f = 2 * evalDim(k, sizes) * y.shape.reduce<number>((p, d) => p * evalDim(d, sizes), 1);
    out.byOp[n.op] += f;
    out.total += f;
    out.nodes++;
  }
  return out;
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
