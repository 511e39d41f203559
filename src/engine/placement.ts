/**
 * Which execution provider ran each node of a session, from ONNX Runtime's profile
 * (RuntimeOptions.profilePrefix): the check that a WebGPU graph does not fall back to the CPU.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

/** One ORT profile node event: which node ran, its op, and the provider that ran it. */
export interface PlacedNode {
  node: string;
  op: string;
  provider: string;
  /** Output element types and shapes as ORT records them (e.g. [{ float: [2, 3] }]). */
  outputs: Record<string, number[]>[];
}

/** The nodes ORT ran, from the profile files written under `dir` (RuntimeOptions.profilePrefix). */
export function placedNodes(dir: string): PlacedNode[] {
  const nodes = new Map<string, PlacedNode>();
  for (const f of readdirSync(dir).filter((n) => n.endsWith('.json'))) {
    const events = JSON.parse(readFileSync(join(dir, f), 'utf8')) as { cat: string; name: string; args?: Record<string, unknown> }[];
    for (const e of events) {
      if (e.cat !== 'Node' || !e.args?.provider || !e.name.endsWith('_kernel_time')) continue;
      const node = e.name.slice(0, -'_kernel_time'.length);
      nodes.set(`${f}:${node}`, {
        node,
        op: String(e.args.op_name),
        provider: String(e.args.provider),
        outputs: (e.args.output_type_shape as Record<string, number[]>[] | undefined) ?? [],
      });
    }
  }
  return [...nodes.values()];
}

/** Elements of the largest output of a node, and whether all its outputs are integer or bool. */
function outputSize(n: PlacedNode): { elements: number; integral: boolean } {
  let elements = 0;
  let integral = true;
  for (const o of n.outputs) {
    for (const [type, dims] of Object.entries(o)) {
      elements = Math.max(elements, dims.reduce((a, b) => a * b, 1));
      if (type !== 'int64' && type !== 'int32' && type !== 'bool') integral = false;
    }
  }
  return { elements, integral };
}

/** Ops that only relabel their input's shape (no arithmetic): ORT leaves them where their input is. */
const VIEW_OPS = new Set(['Reshape', 'Unsqueeze', 'Squeeze', 'Flatten', 'Identity']);

/**
 * Nodes that ran on the CPU provider and are not shape arithmetic, in a session whose provider
 * is `provider`. ORT places shape computations on the CPU on purpose (they feed Reshape, Expand,
 * Slice and Range inputs): a few integers, or such an integer cast to a float scalar (a count
 * dividing a sum). Views and integer casts of integer inputs (token ids) stay with their input too. Anything else
 * on the CPU is a fallback: its inputs and outputs cross between the devices on every run.
 */
export function fallbacks(nodes: readonly PlacedNode[], provider = 'WebGpuExecutionProvider', maxShapeElements = 8): PlacedNode[] {
  return nodes.filter((n) => {
    if (n.provider === provider || /^Memcpy/.test(n.op)) return false;
    const { elements, integral } = outputSize(n);
    // Integer casts stay too: WebGPU kernels read no int64, so an int64 input (token ids,
    // positions) is narrowed to int32 where it arrives, on the host.
    if (integral && (elements <= maxShapeElements || VIEW_OPS.has(n.op) || n.op === 'Cast')) return false;
    return !(n.op === 'Cast' && elements <= maxShapeElements);
  });
}

/**
 * Copies between host and device of more than `maxElements` float values per run: an activation
 * or a parameter crossing (what a fallback or a host-resident parameter costs).
 */
export function floatCopies(nodes: readonly PlacedNode[], maxElements = 8): PlacedNode[] {
  return nodes.filter((n) => /^Memcpy/.test(n.op) && !outputSize(n).integral && outputSize(n).elements > maxElements);
}
