/** Saved weights: 16-bit rounding against a reference, shard plans and sharded folders. */
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCheckpoint } from '../../src/io/hf-folder.js';
import { checkpointDtype, resolveSaveDtype, withStoredDtype } from '../../src/io/save-dtype.js';
import { readSafetensorsHeader, SafetensorsFile } from '../../src/io/safetensors.js';
import { DEFAULT_MAX_SHARD_SIZE, parseShardSize, planShards, shardFileName } from '../../src/io/shards.js';
import { writeModelWeights } from '../../src/io/weights-write.js';
import { writeSafetensors } from '../../src/io/safetensors-write.js';

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'dpo-save-weights-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/**
 * Reference rounding of a float32 value to a float format with `mantissa` stored bits and
 * exponents down to `minExp` (subnormals below), by float64 arithmetic rather than bit tricks:
 * the value is a multiple q of the format's spacing at its magnitude, q is rounded half to even,
 * and anything from the largest finite value plus half a spacing up becomes infinity.
 */
function referenceRound(x: number, mantissa: number, minExp: number, maxExp: number): number {
  if (Number.isNaN(x) || !Number.isFinite(x) || x === 0) return x;
  const sign = x < 0 ? -1 : 1;
  const a = Math.abs(x);
  const exp = Math.max(Math.floor(Math.log2(a)), minExp);
  // log2 can be off by one near powers of two; fix the exponent so that 2^exp <= a < 2^(exp+1).
  const e = a >= 2 ** (exp + 1) ? exp + 1 : a < 2 ** exp && exp > minExp ? exp - 1 : exp;
  const spacing = 2 ** (e - mantissa);
  const q = a / spacing; // exact: a float32 has 24 significant bits
  let r = Math.floor(q);
  const rest = q - r;
  if (rest > 0.5 || (rest === 0.5 && r % 2 === 1)) r += 1;
  const value = r * spacing;
  const maxFinite = (2 - 2 ** -mantissa) * 2 ** maxExp;
  return sign * (value > maxFinite ? Infinity : value);
}

/** Float32 values spread over every exponent, plus exact ties and their neighbours. */
function probeValues(): Float32Array {
  const out: number[] = [0, -0, 1, -1, 65504, 65520, 3.4e38, -3.4e38, 1e-45, 2 ** -133, 2 ** -126, 2 ** -24, 2 ** -25];
  let seed = 7;
  const rnd = () => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return seed;
  };
  const bits = new Uint32Array(1);
  const f = new Float32Array(bits.buffer);
  for (let i = 0; i < 4000; i++) {
    bits[0] = rnd() & 0xffffffff;
    if (!Number.isFinite(f[0])) continue;
    out.push(f[0]);
    // Exact bf16 and fp16 ties: low 16 (resp. 13) bits set to a half spacing.
    bits[0] = (bits[0] & 0xffff0000) | 0x8000;
    if (Number.isFinite(f[0])) out.push(f[0]);
    bits[0] = (bits[0] & 0xffffe000) | 0x1000;
    if (Number.isFinite(f[0])) out.push(f[0]);
  }
  return new Float32Array(out);
}

describe('16-bit saves round to nearest even', () => {
  it('bfloat16 and float16 files hold the reference rounding of every value', async () => {
    const values = probeValues();
    for (const [dtype, mantissa, minExp, maxExp] of [
      ['BF16', 7, -126, 127],
      ['F16', 10, -14, 15],
    ] as const) {
      const dir = await mkdtemp(join(root, `round-${dtype}-`));
      // The file writer itself (model saves refuse values that overflow, see overflow-check.ts; the rounding of those is tested here).
      await writeSafetensors(join(dir, 'model.safetensors'), new Map([['w', { data: values, shape: [values.length] }]]), { dtype });
      const file = await SafetensorsFile.open(join(dir, 'model.safetensors'));
      const back = (await file.readFloat32('w')).data;
      await file.close();
      const wrong: string[] = [];
      for (let i = 0; i < values.length; i++) {
        const expected = referenceRound(values[i], mantissa, minExp, maxExp);
        if (!Object.is(back[i], expected)) wrong.push(`${values[i]} -> ${back[i]}, expected ${expected}`);
      }
      expect(wrong.slice(0, 5), dtype).toEqual([]);
    }
  });
});

describe('--save-dtype', () => {
  it("auto keeps the checkpoint's dtype (most elements), else config.json's, else float32", () => {
    const bf16 = [
      { dtype: 'BF16' as const, shape: [64, 64] },
      { dtype: 'F32' as const, shape: [64] },
    ];
    expect(checkpointDtype(bf16)).toBe('BF16');
    expect(checkpointDtype([{ dtype: 'F64', shape: [3] }])).toBe('F32');
    expect(checkpointDtype([{ dtype: 'I64', shape: [3] }], { torch_dtype: 'float16' })).toBe('F16');
    expect(checkpointDtype([], { dtype: 'bfloat16' })).toBe('BF16');
    expect(checkpointDtype([])).toBe('F32');
    expect(resolveSaveDtype('auto', 'BF16')).toBe('BF16');
    expect(resolveSaveDtype(undefined, 'F16')).toBe('F16');
    expect(resolveSaveDtype('float32', 'BF16')).toBe('F32');
    expect(resolveSaveDtype('bfloat16', 'F32')).toBe('BF16');
    expect(resolveSaveDtype('float16', undefined)).toBe('F16');
    expect(() => resolveSaveDtype('int8' as never, 'F32')).toThrow(/save dtype must be one of auto, float32, bfloat16, float16, got "int8"/);
    expect(withStoredDtype({ a: 1, torch_dtype: 'float32' }, 'BF16')).toEqual({ a: 1, torch_dtype: 'bfloat16' });
    expect(withStoredDtype({ dtype: 'float32' }, 'F16')).toEqual({ dtype: 'float16', torch_dtype: 'float16' });
  });
});

describe('sharded saves', () => {
  it("parses sizes as transformers' convert_file_size_to_int", () => {
    expect(parseShardSize('2GB')).toBe(2_000_000_000);
    expect(DEFAULT_MAX_SHARD_SIZE).toBe(parseShardSize('2GB'));
    expect(parseShardSize('500MB')).toBe(500_000_000);
    expect(parseShardSize('1GiB')).toBe(2 ** 30);
    expect(parseShardSize('64KiB')).toBe(65536);
    expect(parseShardSize('8Mb')).toBe(1_000_000); // bits
    expect(parseShardSize('0.5GB')).toBe(500_000_000);
    expect(parseShardSize('12345')).toBe(12345);
    expect(parseShardSize(4096)).toBe(4096);
    expect(() => parseShardSize('2 parsecs')).toThrow(/max shard size "2 parsecs" is not a size: use bytes or a number with a unit, e.g. 2GB/);
    expect(() => parseShardSize('0MB')).toThrow(/at least 1 byte/);
    expect(() => parseShardSize(-1)).toThrow(/positive whole number of bytes/);
  });

  it("plans shards like huggingface_hub: fill in order, a tensor over the limit alone, before the open shard", () => {
    const plan = planShards(
      [
        ['a', 40],
        ['b', 50],
        ['c', 20],
        ['huge', 250],
        ['d', 30],
        ['e', 100],
      ],
      100,
    );
    expect(plan).toEqual([['a', 'b'], ['huge'], ['c', 'd'], ['e']]);
    expect(planShards([['a', 1]], 100)).toEqual([['a']]);
    expect(planShards([], 100)).toEqual([[]]);
    expect(shardFileName(1, 12)).toBe('model-00002-of-00012.safetensors');
  });

  it('writes model-0000i-of-0000n files and an index transformers reads; one shard stays model.safetensors', async () => {
    const tensors = new Map<string, { data: Float32Array; shape: number[] }>();
    const names = ['model.embed_tokens.weight', 'model.layers.0.mlp.up_proj.weight', 'model.layers.0.input_layernorm.weight', 'lm_head.weight'];
    names.forEach((name, i) => {
      const n = [96, 64, 8, 96][i];
      tensors.set(name, { data: Float32Array.from({ length: n }, (_, k) => (k - i) / 7), shape: [n] });
    });
    const dir = await mkdtemp(join(root, 'sharded-'));
    // bf16: 192 + 128 + 16 + 192 bytes against a 256-byte limit.
    const files = await writeModelWeights(dir, tensors, { dtype: 'BF16', maxShardSize: 256 });
    expect(files).toEqual([
      'model-00001-of-00003.safetensors',
      'model-00002-of-00003.safetensors',
      'model-00003-of-00003.safetensors',
      'model.safetensors.index.json',
    ]);
    expect((await readdir(dir)).sort()).toEqual([...files].sort());
    const indexText = await readFile(join(dir, 'model.safetensors.index.json'), 'utf-8');
    expect(JSON.parse(indexText)).toEqual({
      metadata: { total_size: 528 },
      weight_map: {
        'lm_head.weight': 'model-00003-of-00003.safetensors',
        'model.embed_tokens.weight': 'model-00001-of-00003.safetensors',
        'model.layers.0.input_layernorm.weight': 'model-00002-of-00003.safetensors',
        'model.layers.0.mlp.up_proj.weight': 'model-00002-of-00003.safetensors',
      },
    });
    // json.dumps(indent=2, sort_keys=True): keys sorted, two-space indent, trailing newline.
    expect(indexText.indexOf('"lm_head.weight"')).toBeLessThan(indexText.indexOf('"model.embed_tokens.weight"'));
    expect(indexText.endsWith('}\n')).toBe(true);
    expect((await readSafetensorsHeader(join(dir, files[1]))).tensors.map((t) => [t.name, t.dtype])).toEqual([
      ['model.layers.0.input_layernorm.weight', 'BF16'],
      ['model.layers.0.mlp.up_proj.weight', 'BF16'],
    ]);
    for (const f of files) await rm(join(dir, f));

    await writeModelWeights(dir, tensors, { dtype: 'F32', maxShardSize: 10_000 });
    expect(await readdir(dir)).toEqual(['model.safetensors']);
  });

  it('a sharded folder loads back tensor for tensor', async () => {
    const dir = await mkdtemp(join(root, 'reload-'));
    const tensors = new Map([
      ['x', { data: Float32Array.from({ length: 100 }, (_, k) => k * 0.5), shape: [10, 10] }],
      ['y', { data: Float32Array.from({ length: 30 }, (_, k) => -k), shape: [30] }],
      ['z', { data: Float32Array.from({ length: 50 }, (_, k) => k / 3), shape: [5, 10] }],
    ]);
    await writeModelWeights(dir, tensors, { maxShardSize: 400 });
    await writeFile(join(dir, 'config.json'), '{}');
    const ckpt = await openCheckpoint(dir);
    try {
      expect(ckpt.weightFiles.length).toBe(2);
      for (const [name, t] of tensors) expect((await ckpt.read(name)).data, name).toEqual(t.data);
    } finally {
      await ckpt.close();
    }
  });
});
