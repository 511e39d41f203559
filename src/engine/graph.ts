import type { AnyTypedArray, DType } from './dtype.js';
import type { OpName } from './op-names.js';
import { formatShape, type Dim, type Shape } from './shape.js';

export type AttrValue = number | string | readonly number[] | readonly string[];
export type Attrs = Readonly<Record<string, AttrValue>>;

/** One operation: its kind (an engine op name), inputs, attributes and outputs. */
export interface Node {
  readonly id: number;
  readonly op: OpName;
  readonly inputs: readonly Tensor[];
  readonly attrs: Attrs;
  outputs: Tensor[];
}

export type TensorKind = 'input' | 'constant' | 'op';

/**
 * A symbolic tensor: a value of the graph that exists only when the compiled graph runs.
 * Produced by a graph input, a constant, or an op.
 */
export class Tensor {
  constructor(
    readonly graph: Graph,
    readonly id: number,
    readonly dtype: DType,
    readonly shape: readonly Dim[],
    readonly kind: TensorKind,
    /** The op that makes this tensor (kind 'op'). */
    readonly node?: Node,
    /** Which output of `node` this is. */
    readonly outputIndex = 0,
    /** Graph input name (kind 'input'). */
    readonly name?: string,
    /** Value (kind 'constant'). */
    readonly value?: AnyTypedArray,
  ) {}

  get rank(): number {
    return this.shape.length;
  }

  toString(): string {
    const what = this.name ?? (this.node ? `${this.node.op}#${this.node.id}` : `const#${this.id}`);
    return `${what}: ${this.dtype}${formatShape(this.shape)}`;
  }
}

interface DimSource {
  tensor: Tensor;
  axis: number;
}

/**
 * A graph under construction. Tensors belong to exactly one graph. Every named (dynamic) dim has
 * a source — the first tensor and axis it appeared on — so that run-time shapes can be read back
 * with a Shape op when an op needs them (Reshape, Expand, ConstantOfShape).
 */
export class Graph {
  private nextId = 0;
  readonly nodes: Node[] = [];
  readonly inputs: Tensor[] = [];
  private readonly inputNames = new Set<string>();
  private readonly dimSources = new Map<string, DimSource>();
  /** Caches of small derived tensors (scalar constants, dim reads) so they are emitted once. */
  readonly memo = new Map<string, Tensor>();

  constructor(readonly name = 'dpo_ts_graph') {}

  /** Set while {@link scoped} runs. */
  private inputScope?: { prefix: string; wrap?: (input: Tensor) => Tensor };

  input(name: string, dtype: DType, shape: Shape): Tensor {
    const scope = this.inputScope;
    if (scope) {
      name = scope.prefix + name;
      shape = shape.map((d) => (typeof d === 'string' ? scope.prefix + d : d));
    }
    if (this.inputNames.has(name)) throw new Error(`graph input '${name}' is declared twice`);
    if (!/^[A-Za-z_][\w.:/-]*$/.test(name)) throw new Error(`graph input name '${name}' is not a valid ONNX name`);
    this.inputNames.add(name);
    const t = new Tensor(this, this.nextId++, dtype, [...shape], 'input', undefined, 0, name);
    this.inputs.push(t);
    this.registerDims(t);
    return scope?.wrap ? scope.wrap(t) : t;
  }

  /**
   * Runs `fn` with every input it declares, and every named dim of those inputs, prefixed with
   * `prefix`; `wrap` (if given) replaces each such input for `fn`. This is how one graph holds
   * several copies of the same builder (the K steps of TrainStep.steps): each copy gets its own
   * inputs, and its own dynamic sizes, since two batches may differ in length.
   */
  scoped<T>(prefix: string, fn: () => T, wrap?: (input: Tensor) => Tensor): T {
    if (this.inputScope) throw new Error(`graph scope '${prefix}' opened inside scope '${this.inputScope.prefix}'`);
    this.inputScope = { prefix, wrap };
    try {
      return fn();
    } finally {
      this.inputScope = undefined;
    }
  }

  constant(value: AnyTypedArray, dtype: DType, shape: Shape): Tensor {
    const t = new Tensor(this, this.nextId++, dtype, [...shape], 'constant', undefined, 0, undefined, value);
    return t;
  }

  /** Adds a node whose output types were already inferred. Used by the op registry only. */
  addNode(op: OpName, inputs: readonly Tensor[], attrs: Attrs, outputTypes: { dtype: DType; shape: Dim[] }[]): Tensor[] {
    for (const x of inputs) {
      if (x.graph !== this) throw new Error(`${op}: input ${x} belongs to another graph`);
    }
    const subst = this.substitutions;
    const node: Node = { id: this.nextId++, op, inputs: subst ? inputs.map((x) => subst.get(x.id) ?? x) : [...inputs], attrs, outputs: [] };
    node.outputs = outputTypes.map(
      (t, i) => new Tensor(this, this.nextId++, t.dtype, t.shape, 'op', node, i),
    );
    this.nodes.push(node);
    for (const out of node.outputs) this.registerDims(out);
    return node.outputs;
  }

  private readonly frozen = new Set<number>();

  /**
   * Declares a graph input that no gradient will be asked of (a frozen weight), so that graph
   * builders can pick cheaper constructions (requiresGrad in autodiff.ts). Asking for its gradient
   * anyway still works; only those choices assumed it would not be.
   */
  freeze(t: Tensor): void {
    if (t.graph !== this || t.kind !== 'input') throw new Error(`freeze: ${t} is not an input of this graph`);
    this.frozen.add(t.id);
  }

  isFrozen(t: Tensor): boolean {
    return this.frozen.has(t.id);
  }

  /** Float32 views of frozen float16 inputs (engine/frozen.ts): view id -> the float16 input. */
  private readonly recasts = new Map<number, Tensor>();
  /** While set, nodes made take these tensors in place of the ones they are given (by id). */
  private substitutions?: ReadonlyMap<number, Tensor>;

  /** Records that `view` is `source` (a frozen float16 input) cast to float32, so that it can be cast again where it is used. */
  markRecast(view: Tensor, source: Tensor): void {
    this.recasts.set(view.id, source);
  }

  /** The frozen float16 input `t` is a float32 view of, if it is one. */
  recastSource(t: Tensor): Tensor | undefined {
    return this.recasts.get(t.id);
  }

  /** Runs `fn` with every node it makes reading `map.get(x.id)` instead of each input x found in the map. */
  withSubstitutions<T>(map: ReadonlyMap<number, Tensor>, fn: () => T): T {
    const outer = this.substitutions;
    this.substitutions = outer ? new Map([...outer, ...map]) : map;
    try {
      return fn();
    } finally {
      this.substitutions = outer;
    }
  }

  /** The id the next tensor or node will get: everything made before this call has a smaller id. */
  mark(): number {
    return this.nextId;
  }

  /** Where a named dim can be read at run time. */
  dimSource(dim: string): DimSource | undefined {
    return this.dimSources.get(dim);
  }

  /** A fresh name for a size only known at run time. */
  freshDim(hint: string): string {
    return `${hint}_${this.nextId++}`;
  }

  private registerDims(t: Tensor): void {
    t.shape.forEach((d, axis) => {
      if (typeof d === 'string' && !this.dimSources.has(d)) this.dimSources.set(d, { tensor: t, axis });
    });
  }
}
