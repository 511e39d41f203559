/**
 * The engine's op names are one typed list (op-names.ts): Node.op, Graph.addNode, the gradient
 * rules and the ONNX lowering are typed by it, so an op without a gradient rule or a lowering
 * does not compile. The type-level checks run under `npm run typecheck` (tsc reads test/): every
 * `@ts-expect-error` below fails the typecheck the day its mistake compiles. The run-time checks
 * confirm that the tables hold what their types promise.
 */
import { describe, expect, expectTypeOf, it } from 'vitest';
import { gradientRuleOps, hasGradientRule, type GradientRules, type VjpRule } from '../../src/engine/autodiff.js';
import { Graph, type Node } from '../../src/engine/graph.js';
import { loweredOps, type Lowering, type Lowerings } from '../../src/engine/onnx-export.js';
import {
  NON_DIFFERENTIABLE_OPS,
  OP_NAMES,
  isNonDifferentiable,
  type DifferentiableOp,
  type NonDifferentiableOp,
  type OpName,
} from '../../src/engine/op-names.js';

const sorted = (xs: readonly string[]): string[] => [...xs].sort();

describe('op names: types', () => {
  it('Node.op and Graph.addNode take an OpName; every op has a gradient rule or is non-differentiable', () => {
    expectTypeOf<Node['op']>().toEqualTypeOf<OpName>();
    expectTypeOf<Parameters<Graph['addNode']>[0]>().toEqualTypeOf<OpName>();
    expectTypeOf<keyof GradientRules>().toEqualTypeOf<DifferentiableOp>();
    expectTypeOf<DifferentiableOp | NonDifferentiableOp>().toEqualTypeOf<OpName>();
    expectTypeOf<keyof Lowerings>().toEqualTypeOf<OpName>();
  });

  it('a missing or misspelt gradient rule, a rule for a non-differentiable op, a missing lowering and an unknown op do not compile', () => {
    const rule: VjpRule = (_n, g) => [g];
    const lowering: Lowering = () => undefined;
    // @ts-expect-error Exp is differentiable: a rule table without its rule is not a GradientRules
    const withoutExp: GradientRules = {} as Omit<GradientRules, 'Exp'>;
    // @ts-expect-error 'Exq' is no op
    const misspelt: GradientRules = { ...({} as GradientRules), Exq: rule };
    // @ts-expect-error Less is declared non-differentiable: it cannot have a rule
    const ruleForLess: GradientRules = { ...({} as GradientRules), Less: rule };
    // @ts-expect-error every op needs a lowering, Gemm included
    const withoutGemm: Lowerings = {} as Omit<Lowerings, 'Gemm'>;
    // @ts-expect-error 'Gemn' is no op
    const misspeltLowering: Lowerings = { ...({} as Lowerings), Gemn: lowering };
    const g = new Graph();
    const x = g.input('x', 'float32', [2]);
    // @ts-expect-error 'Exq' is no op
    const [y] = g.addNode('Exq', [x], {}, [{ dtype: 'float32', shape: [2] }]);
    expect(y.node?.op).toBe('Exq');
    expect([withoutExp, misspelt, ruleForLess, withoutGemm, misspeltLowering]).toHaveLength(5);
  });
});

describe('op names: the tables at run time', () => {
  it('OP_NAMES has no duplicate and NON_DIFFERENTIABLE_OPS is a part of it', () => {
    expect(new Set(OP_NAMES).size).toBe(OP_NAMES.length);
    for (const name of NON_DIFFERENTIABLE_OPS) expect(OP_NAMES).toContain(name);
  });

  it('the gradient rules are exactly the differentiable ops', () => {
    const differentiable = OP_NAMES.filter((n) => !isNonDifferentiable(n));
    expect(sorted(gradientRuleOps())).toEqual(sorted(differentiable));
    for (const name of OP_NAMES) expect(hasGradientRule(name), name).toBe(true);
    expect(hasGradientRule('NoSuchOp')).toBe(false);
    expect(hasGradientRule('toString')).toBe(false);
  });

  it('every op has an ONNX lowering, and nothing else has one', () => {
    expect(sorted(loweredOps())).toEqual(sorted(OP_NAMES));
  });
});
