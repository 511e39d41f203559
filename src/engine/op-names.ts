/**
 * The names of the engine's primitive ops: the one list that a graph node's kind (Node.op), the
 * gradient rules (autodiff.ts) and the ONNX lowering (onnx-export.ts) are typed by. A new op is
 * added here first; the compiler then names every table that lacks an entry for it.
 */
export const OP_NAMES = [
  // elementwise (ops.ts)
  'Add', 'Sub', 'Mul', 'Div', 'Pow', 'Max', 'Min',
  'Less', 'LessOrEqual', 'Greater', 'GreaterOrEqual', 'Equal', 'And', 'Or', 'Not',
  'Neg', 'Exp', 'Log', 'Tanh', 'Sigmoid', 'Sqrt', 'Reciprocal', 'Abs', 'Relu', 'Sin', 'Cos', 'Erf',
  'StopGradient', 'Identity', 'Cast', 'Where',
  // reductions
  'ReduceSum', 'ReduceSumSquare', 'ReduceMax', 'ReduceLogSumExp', 'ReduceProd', 'ReduceMean',
  // matmul and friends
  'MatMul', 'Gemm', 'Softmax', 'Dropout',
  // run-time shapes
  'Shape', 'ConstantOfShape', 'Range',
  // layout
  'Reshape', 'Transpose', 'Slice', 'Concat', 'Split', 'Expand', 'Unsqueeze', 'Squeeze', 'Pad',
  // indexing
  'Gather', 'GatherElements', 'ScatterElements', 'ScatterND', 'GatherND',
  // recomputation (checkpoint.ts)
  'Checkpoint',
] as const;

/** An engine op name. */
export type OpName = (typeof OP_NAMES)[number];

/**
 * Ops whose outputs carry no gradient (bool/int results, shapes): they have no gradient rule, and
 * every other op must have one (autodiff.ts's table is typed so that a missing rule does not compile).
 */
export const NON_DIFFERENTIABLE_OPS = [
  'Less', 'LessOrEqual', 'Greater', 'GreaterOrEqual', 'Equal', 'And', 'Or', 'Not',
  'Shape', 'ConstantOfShape', 'Range',
] as const satisfies readonly OpName[];

export type NonDifferentiableOp = (typeof NON_DIFFERENTIABLE_OPS)[number];

/** An op with a gradient rule (StopGradient's gives zero). */
export type DifferentiableOp = Exclude<OpName, NonDifferentiableOp>;

const nonDifferentiable: ReadonlySet<string> = new Set(NON_DIFFERENTIABLE_OPS);

export function isNonDifferentiable(op: string): op is NonDifferentiableOp {
  return nonDifferentiable.has(op);
}
