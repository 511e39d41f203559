/**
 * The public API: the package root exports exactly the names below (values and types, grouped by
 * task as src/index.ts groups them), `main` only from `dpo-ts/cli`, and every subpath of
 * package.json's "exports" maps to a src/ entry point. Adding a root name means adding it here.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import * as api from '../../src/index.js';

const ROOT = join(import.meta.dirname, '..', '..');

const ROOT_VALUES = [
  // trainers
  'DPOTrainer', 'SFTTrainer', 'RewardTrainer', 'KTOTrainer', 'CPOTrainer', 'ORPOTrainer', 'PPOTrainer', 'OnlineDPOTrainer',
  // generate
  'generate', 'Generator',
  // evaluate
  'evaluatePreferences', 'evaluateGenerations',
  // models, LoRA, saving
  'loadPretrained', 'savePretrained', 'loadModelOrAdapter', 'loadTokenizer', 'loraConfig', 'mergeLora', 'saveLoraAdapter', 'loadLoraAdapter', 'exportOnnx',
  // data
  'loadPreferenceData', 'tokenizePreferences', 'loadPrompts',
  // errors, progress
  'DpoError', 'createProgress', 'silentProgress',
];
const ROOT_TYPES = [
  'DPOConfigInput', 'SFTConfigInput', 'RewardConfigInput', 'KTOConfigInput', 'CPOConfigInput', 'ORPOConfigInput', 'PPOConfigInput', 'OnlineDPOConfigInput', 'TrainerResult',
  'GenerateOptions',
  'EvalConfigInput', 'EvaluationReport',
  'Pretrained', 'LoraConfig',
  'ProgressReporter',
];

const sorted = (xs: readonly string[]): string[] => [...xs].sort();

describe('the package root', () => {
  it('exports exactly the pinned values', () => {
    expect(sorted(Object.keys(api))).toEqual(sorted(ROOT_VALUES));
    for (const name of ROOT_VALUES) expect((api as Record<string, unknown>)[name], name).toBeDefined();
  });

  it('exports exactly the pinned names, types included (read by the TypeScript compiler)', () => {
    const file = join(ROOT, 'src', 'index.ts');
    const program = ts.createProgram([file], { module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, target: ts.ScriptTarget.ES2022, strict: true, skipLibCheck: true, noEmit: true });
    const checker = program.getTypeChecker();
    const source = program.getSourceFile(file);
    const symbol = source && checker.getSymbolAtLocation(source);
    expect(symbol).toBeDefined();
    const names = checker.getExportsOfModule(symbol as ts.Symbol).map((s) => s.name);
    expect(sorted(names)).toEqual(sorted([...ROOT_VALUES, ...ROOT_TYPES]));
    expect(names.length).toBeLessThanOrEqual(45);
  });
});

describe('the subpaths', () => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { exports: Record<string, { types: string; default: string }> };

  it('map dpo-ts/<name> to dist/<folder>/index.js and its .d.ts, each built from a src/ entry point', () => {
    const subpaths = Object.keys(pkg.exports).sort();
    expect(subpaths).toEqual(['.', './browser', './cli', './data', './engine', './eval', './export', './generate', './io', './models', './scoring', './train'].sort());
    for (const [path, target] of Object.entries(pkg.exports)) {
      const base = path === '.' ? 'index' : `${path.slice(2)}/index`;
      // The browser entry is served as the one-module bundle (npm run build:browser), typed by its index.d.ts.
      const js = path === './browser' ? './dist/browser/dpo-browser.js' : `./dist/${base}.js`;
      expect(target).toEqual({ types: `./dist/${base}.d.ts`, default: js });
      expect(() => readFileSync(join(ROOT, 'src', `${base}.ts`)), `src/${base}.ts`).not.toThrow();
    }
  });

  it('hold what left the root: main in cli, the engine, the trainers\' configs and losses, LoRA internals', async () => {
    const cli = await import('../../src/cli/index.js');
    expect(typeof cli.main).toBe('function');
    expect(typeof cli.runQuickstart).toBe('function');
    expect('main' in api).toBe(false);
    const engine = await import('../../src/engine/index.js');
    expect(typeof engine.Graph).toBe('function');
    expect(typeof engine.TrainStep).toBe('function');
    expect(typeof engine.op.matmul).toBe('function');
    const train = await import('../../src/train/index.js');
    const c = train.parseDpoConfig({ model: 'm', data: 'd', output: 'o' });
    expect(c).toMatchObject({ beta: 0.1, lossType: ['sigmoid'], learningRate: 1e-6, optimizer: 'adamw', maxGradNorm: 1 });
    expect(train.DPOConfigSchema.parse({ model: 'm', data: 'd', output: 'o' }).beta).toBe(0.1);
    expect(train.LOSS_TYPES).toContain('ipo');
    for (const name of ['preferenceLoss', 'plackettLuceLoss', 'runTrainer', 'defineConfig', 'MetricsAccumulator', 'ktoLoss', 'cpoLoss', 'bradleyTerryLoss', 'PPOConfigSchema', 'OnlineDPOConfigSchema']) {
      expect(train, name).toHaveProperty(name);
    }
    const models = await import('../../src/models/index.js');
    for (const name of ['applyLora', 'LORA_DEFAULTS', 'createModel', 'withGradientCheckpointing']) expect(models, name).toHaveProperty(name);
    const data = await import('../../src/data/index.js');
    for (const name of ['preparePreferenceData', 'PreferenceBatcher']) expect(data, name).toHaveProperty(name);
    const scoring = await import('../../src/scoring/index.js');
    for (const name of ['sequenceLogps', 'Scorer', 'computeReferenceLogps', 'loadRewardModel']) expect(scoring, name).toHaveProperty(name);
  });
});
