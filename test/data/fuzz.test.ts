/**
 * Property-based fuzzing (fast-check) of the parsers that read user files: data rows (JSONL bytes
 * and in-memory rows), the safetensors header, a model's config.json and the training config.
 * Whatever the input, they either succeed or throw the project's own DpoError: never a TypeError,
 * RangeError or a crash.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, it } from 'vitest';
import { preferenceExamplesFromRows, sftExamplesFromRows } from '../../src/data/load.js';
import { readDataFile } from '../../src/data/read.js';
import { DpoError } from '../../src/errors.js';
import { parseSafetensorsHeader } from '../../src/io/safetensors.js';
import { createModel, supportedModelTypes } from '../../src/models/registry.js';
import { parseDpoConfig } from '../../src/train/dpo/config.js';
import { tempDir } from '../train/helpers.js';
import { FakeTokenizer } from './helpers.js';

const RUNS = { numRuns: 300, seed: 12 };

function onlyDpoError(f: () => unknown): void {
  try {
    f();
  } catch (e) {
    if (!(e instanceof DpoError)) throw new Error(`threw ${(e as Error).name}: ${(e as Error).message}`);
  }
}

async function onlyDpoErrorAsync(f: () => Promise<unknown>): Promise<void> {
  try {
    await f();
  } catch (e) {
    if (!(e instanceof DpoError)) throw new Error(`threw ${(e as Error).name}: ${(e as Error).message}`);
  }
}

/** JSON-ish values biased towards the shapes rows and configs have. */
const fieldValue = fc.oneof(
  fc.string(),
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.string(), { maxLength: 3 }),
  fc.array(fc.record({ role: fc.oneof(fc.constantFrom('user', 'assistant', 'system'), fc.string()), content: fc.oneof(fc.string(), fc.integer()) }), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 5 }), fc.string(), { maxKeys: 2 }),
);
const rowKeys = fc.constantFrom('prompt', 'chosen', 'rejected', 'completion', 'completions', 'label', 'text', 'messages', 'ranking', 'question', 'response_j', 'response_k');
const row = fc.oneof(fc.dictionary(rowKeys, fieldValue, { maxKeys: 5 }), fieldValue);

describe('fuzz: nothing but DpoError', () => {
  it('preference and SFT rows in memory', () => {
    const tokenizer = new FakeTokenizer();
    fc.assert(
      fc.property(fc.array(row, { minLength: 1, maxLength: 4 }), fc.constantFrom('error', 'skip') as fc.Arbitrary<'error' | 'skip'>, (rows, onBadRow) => {
        onlyDpoError(() => preferenceExamplesFromRows(rows, { onBadRow, tokenizer }));
        onlyDpoError(() => sftExamplesFromRows(rows, { onBadRow, tokenizer }));
      }),
      RUNS,
    );
  });

  it('JSONL and JSON files of arbitrary bytes', async () => {
    const dir = tempDir('dpo-ts-fuzz-');
    const jsonl = join(dir, 'd.jsonl');
    const json = join(dir, 'd.json');
    const text = fc.oneof(
      fc.uint8Array({ maxLength: 200 }),
      fc.array(fc.oneof(row.map((r) => JSON.stringify(r) ?? ''), fc.string()), { maxLength: 5 }).map((lines) => new TextEncoder().encode(lines.join('\n'))),
    );
    await fc.assert(
      fc.asyncProperty(text, async (bytes) => {
        writeFileSync(jsonl, bytes);
        writeFileSync(json, bytes);
        await onlyDpoErrorAsync(async () => {
          const r = await readDataFile(jsonl);
          preferenceExamplesFromRows(r.rows.map((x) => x.value), { onBadRow: 'skip' });
        });
        await onlyDpoErrorAsync(() => readDataFile(json));
      }),
      { numRuns: 150, seed: 12 },
    );
  });

  it('safetensors headers', () => {
    const tensor = fc.record(
      {
        dtype: fc.oneof(fc.constantFrom('F32', 'F16', 'BF16', 'F64', 'I64', 'U8', 'BOOL'), fc.string(), fc.integer()),
        shape: fc.oneof(fc.array(fc.oneof(fc.integer({ min: -2, max: 8 }), fc.double(), fc.string()), { maxLength: 3 }), fieldValue),
        data_offsets: fc.oneof(fc.tuple(fc.integer({ min: -4, max: 64 }), fc.integer({ min: -4, max: 64 })), fieldValue),
      },
      { requiredKeys: [] },
    );
    const header = fc.oneof(
      fc.dictionary(fc.oneof(fc.string({ maxLength: 4 }), fc.constant('__metadata__')), fc.oneof(tensor, fieldValue), { maxKeys: 3 }).map((h) => JSON.stringify(h)),
      fc.string(),
    );
    fc.assert(
      fc.property(header, fc.integer({ min: 0, max: 200 }), (text, extra) => {
        const bytes = new TextEncoder().encode(text);
        onlyDpoError(() => parseSafetensorsHeader('f.safetensors', bytes, 8 + bytes.length + extra));
      }),
      RUNS,
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), fc.nat(300), (bytes, size) => onlyDpoError(() => parseSafetensorsHeader('f.safetensors', bytes, size))),
      RUNS,
    );
  });

  it("a model's config.json", () => {
    const size = fc.oneof(fc.integer({ min: -3, max: 64 }), fc.double({ min: -10, max: 100 }), fc.string(), fc.constant(null), fc.array(fc.integer({ min: 0, max: 4 }), { maxLength: 2 }));
    const keys = fc.constantFrom(
      'vocab_size', 'n_embd', 'n_layer', 'n_head', 'n_positions', 'hidden_size', 'num_hidden_layers', 'num_attention_heads', 'num_key_value_heads',
      'intermediate_size', 'max_position_embeddings', 'head_dim', 'rotary_dim', 'rotary_pct', 'rope_theta', 'rope_scaling', 'n_inner', 'eos_token_id',
      'bos_token_id', 'tie_word_embeddings', 'rms_norm_eps', 'layer_norm_epsilon', 'activation_function', 'hidden_act', 'use_parallel_residual', 'partial_rotary_factor',
    );
    const config = fc.record({ model_type: fc.oneof(fc.constantFrom(...supportedModelTypes()), fieldValue), rest: fc.dictionary(keys, fc.oneof(size, fieldValue), { maxKeys: 12 }) });
    fc.assert(
      fc.property(config, ({ model_type, rest }) => {
        onlyDpoError(() => {
          const m = createModel({ ...rest, model_type });
          m.parameters();
        });
      }),
      RUNS,
    );
  });

  it('the training config', () => {
    const keys = fc.constantFrom('model', 'data', 'output', 'beta', 'learningRate', 'lossType', 'lossWeights', 'batchSize', 'maxSteps', 'lora', 'reference', 'syncRefEvery', 'maxLength', 'seed', 'warmupSteps', 'lrScheduler', 'refModel', 'referenceFree', 'resume', 'threads');
    fc.assert(
      fc.property(fc.dictionary(keys, fieldValue, { maxKeys: 8 }), fc.boolean(), (rest, complete) => {
        const base = complete ? { model: 'm', data: 'd', output: 'o' } : {};
        onlyDpoError(() => parseDpoConfig({ ...base, ...rest }));
      }),
      RUNS,
    );
  });
});
