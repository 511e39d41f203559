import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DpoError } from '../../src/errors.js';
import { floatToBf16Bits, floatToHalfBits, halfToFloat } from '../../src/io/dtypes.js';
import { SafetensorsFile, readSafetensors, readSafetensorsHeader } from '../../src/io/safetensors.js';
import { writeSafetensors } from '../../src/io/safetensors-write.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dpo-st-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A safetensors file from a header object and raw data bytes, exactly as given. */
async function makeFile(name: string, header: unknown, data: Uint8Array, headerText?: string): Promise<string> {
  const text = Buffer.from(headerText ?? JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(text.length));
  const path = join(dir, name);
  await writeFile(path, Buffer.concat([len, text, data]));
  return path;
}

function f32Bytes(values: number[]): Uint8Array {
  return new Uint8Array(new Float32Array(values).buffer);
}

describe('writeSafetensors / readSafetensors', () => {
  it('round-trips F32 tensors, including a scalar and an empty tensor', async () => {
    const path = join(dir, 'rt.safetensors');
    const tensors = new Map([
      ['b.weight', { data: new Float32Array([1, 2, 3, 4, 5, 6]), shape: [2, 3] }],
      ['a.bias', { data: new Float32Array([-1.5, 0.25]), shape: [2] }],
      ['scalar', { data: new Float32Array([7]), shape: [] }],
      ['empty', { data: new Float32Array(0), shape: [0, 4] }],
    ]);
    await writeSafetensors(path, tensors);
    const back = await readSafetensors(path);
    expect([...back.keys()].sort()).toEqual(['a.bias', 'b.weight', 'empty', 'scalar']);
    for (const [name, t] of tensors) {
      expect(back.get(name)!.shape).toEqual(t.shape);
      expect(Array.from(back.get(name)!.data)).toEqual(Array.from(t.data));
    }
    // No temp files are left next to the output.
    expect((await readdir(dir)).filter((f) => f.startsWith('.rt'))).toEqual([]);
  });

  it('lays the file out like the Rust implementation: sorted keys, 8-byte padded header, format pt', async () => {
    const path = join(dir, 'layout.safetensors');
    await writeSafetensors(path, {
      z: { data: new Float32Array([1]), shape: [1] },
      '10': { data: new Float32Array([2, 3]), shape: [2] },
      a: { data: new Float32Array([4]), shape: [1, 1] },
    });
    const bytes = await readFile(path);
    const n = Number(bytes.readBigUInt64LE(0));
    expect(n % 8).toBe(0);
    const headerText = bytes.subarray(8, 8 + n).toString('utf-8');
    expect(headerText.trimEnd()).toBe(
      '{"__metadata__":{"format":"pt"},' +
        '"10":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},' +
        '"a":{"dtype":"F32","shape":[1,1],"data_offsets":[8,12]},' +
        '"z":{"dtype":"F32","shape":[1],"data_offsets":[12,16]}}',
    );
    expect(headerText.slice(headerText.trimEnd().length)).toMatch(/^ *$/);
    expect(Array.from(new Float32Array(bytes.buffer.slice(bytes.byteOffset + 8 + n)))).toEqual([2, 3, 4, 1]);
    const header = await readSafetensorsHeader(path);
    expect(header.metadata).toEqual({ format: 'pt' });
    expect(header.tensors.map((t) => t.name)).toEqual(['10', 'a', 'z']);
    expect(header.dataStart).toBe(8 + n);
  });

  it('writes F16 and BF16 with round-to-nearest-even and reads them back as float32', async () => {
    const values = [0, -0, 1, -2.5, 65504, 1e-7, 3.14159, 70000, 1 / 3];
    const data = new Float32Array(values);
    for (const dtype of ['F16', 'BF16'] as const) {
      const path = join(dir, `half-${dtype}.safetensors`);
      await writeSafetensors(path, { x: { data, shape: [values.length] } }, { dtype, metadata: { note: 'hi' } });
      const header = await readSafetensorsHeader(path);
      expect(header.tensors[0]).toMatchObject({ dtype, shape: [values.length], byteLength: values.length * 2 });
      expect(header.metadata).toEqual({ format: 'pt', note: 'hi' });
      const back = (await readSafetensors(path)).get('x')!.data;
      for (let i = 0; i < values.length; i++) {
        const expected =
          dtype === 'F16' ? halfToFloat(floatToHalfBits(data[i])) : new Float32Array(new Uint32Array([floatToBf16Bits(data[i]) << 16]).buffer)[0];
        expect(back[i]).toBe(expected);
      }
    }
  });

  it('rounds float32 to half and bfloat16 bit patterns correctly', () => {
    expect(floatToHalfBits(1)).toBe(0x3c00);
    expect(floatToHalfBits(-2)).toBe(0xc000);
    expect(floatToHalfBits(65504)).toBe(0x7bff);
    expect(floatToHalfBits(65520)).toBe(0x7c00); // rounds up to infinity
    expect(floatToHalfBits(2 ** -24)).toBe(0x0001); // smallest subnormal
    expect(floatToHalfBits(2 ** -25)).toBe(0x0000); // tie rounds to even (zero)
    expect(floatToHalfBits(3 * 2 ** -25)).toBe(0x0002); // tie rounds to even (2)
    expect(floatToHalfBits(1 + 2 ** -11)).toBe(0x3c00); // tie -> even mantissa
    expect(floatToHalfBits(1 + 3 * 2 ** -11)).toBe(0x3c02);
    expect(floatToHalfBits(NaN) & 0x7c00).toBe(0x7c00);
    expect(floatToHalfBits(NaN) & 0x3ff).not.toBe(0);
    expect(floatToBf16Bits(1)).toBe(0x3f80);
    expect(floatToBf16Bits(-Infinity)).toBe(0xff80);
    expect(floatToBf16Bits(1 + 2 ** -8)).toBe(0x3f80); // tie -> even
    expect(floatToBf16Bits(1 + 3 * 2 ** -8)).toBe(0x3f82);
    expect(Number.isNaN(halfToFloat(floatToHalfBits(NaN)))).toBe(true);
    for (let h = 0; h < 0x7c00; h += 37) expect(floatToHalfBits(halfToFloat(h))).toBe(h);
  });

  it('reads F64, I64, I32, U8 and BOOL tensors', async () => {
    const f64 = new Float64Array([1.5, -2]);
    const i64 = new BigInt64Array([3n, -4n]);
    const i32 = new Int32Array([5, -6]);
    const u8 = new Uint8Array([7, 8, 1, 0]);
    const data = Buffer.concat([
      new Uint8Array(f64.buffer),
      new Uint8Array(i64.buffer),
      new Uint8Array(i32.buffer),
      u8,
    ]);
    const path = await makeFile(
      'types.safetensors',
      {
        f64: { dtype: 'F64', shape: [2], data_offsets: [0, 16] },
        i64: { dtype: 'I64', shape: [2], data_offsets: [16, 32] },
        i32: { dtype: 'I32', shape: [1, 2], data_offsets: [32, 40] },
        u8: { dtype: 'U8', shape: [2], data_offsets: [40, 42] },
        mask: { dtype: 'BOOL', shape: [2], data_offsets: [42, 44] },
      },
      data,
    );
    const all = await readSafetensors(path);
    expect(Array.from(all.get('f64')!.data)).toEqual([1.5, -2]);
    expect(Array.from(all.get('i64')!.data)).toEqual([3, -4]);
    expect(all.get('i32')!.shape).toEqual([1, 2]);
    expect(Array.from(all.get('i32')!.data)).toEqual([5, -6]);
    expect(Array.from(all.get('mask')!.data)).toEqual([1, 0]);
    const file = await SafetensorsFile.open(path);
    try {
      const raw = await file.readRaw('i64');
      expect(raw.data).toBeInstanceOf(BigInt64Array);
      expect(Array.from(raw.data as BigInt64Array)).toEqual([3n, -4n]);
      expect((await file.readRaw('i32')).data).toBeInstanceOf(Int32Array);
      expect(file.names()).toEqual(['f64', 'i64', 'i32', 'u8', 'mask']);
      await expect(file.readFloat32('nope')).rejects.toThrow(/no tensor named "nope"/);
    } finally {
      await file.close();
    }
  });

  it('refuses integers float32 cannot hold exactly, naming the tensor', async () => {
    const i64 = new BigInt64Array([2n ** 40n + 1n]);
    const path = await makeFile('bigint.safetensors', { ids: { dtype: 'I64', shape: [1], data_offsets: [0, 8] } }, new Uint8Array(i64.buffer));
    await expect(readSafetensors(path)).rejects.toThrow(/tensor "ids" \(I64\) holds 1099511627777/);
  });

  it('rejects a tensor whose element count does not match its shape', async () => {
    await expect(
      writeSafetensors(join(dir, 'bad.safetensors'), { w: { data: new Float32Array(5), shape: [2, 3] } }),
    ).rejects.toThrow(/tensor "w" has 5 elements but shape \[2, 3\] needs 6/);
    expect(await readdir(dir)).not.toContain('bad.safetensors');
  });
});

describe('corrupt safetensors files', () => {
  const good = { w: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } };

  async function expectCorrupt(name: string, header: unknown, data: Uint8Array, pattern: RegExp, headerText?: string) {
    const path = await makeFile(name, header, data, headerText);
    const err = await readSafetensorsHeader(path).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(DpoError);
    const message = (err as Error).message;
    expect(message).toContain(path);
    expect(message).toMatch(pattern);
    expect(message).not.toContain('\n');
  }

  it('header length beyond the file size', async () => {
    const path = join(dir, 'hlen.safetensors');
    const buf = Buffer.alloc(16);
    buf.writeBigUInt64LE(1000n);
    await writeFile(path, buf);
    await expect(readSafetensorsHeader(path)).rejects.toThrow(/header length 1000 is beyond the file size \(16 bytes\)/);
  });

  it('a file shorter than 8 bytes', async () => {
    const path = join(dir, 'tiny.safetensors');
    await writeFile(path, Buffer.from([1, 2, 3]));
    await expect(readSafetensorsHeader(path)).rejects.toThrow(/shorter than the 8-byte header length/);
  });

  it('invalid header JSON', () => expectCorrupt('json.safetensors', null, f32Bytes([1, 2]), /invalid header JSON/, '{"w": {"dtype": '));

  it('unknown dtype', () =>
    expectCorrupt('dtype.safetensors', { w: { dtype: 'F12', shape: [2], data_offsets: [0, 8] } }, f32Bytes([1, 2]), /tensor "w": unknown dtype "F12"/));

  it('data length not equal to dtype size x prod(shape)', () =>
    expectCorrupt(
      'len.safetensors',
      { w: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } },
      f32Bytes([1, 2]),
      /tensor "w": data length 8 bytes does not equal F32 size 4 x 3 elements/,
    ));

  it('offsets out of range (truncated data)', () =>
    expectCorrupt('trunc.safetensors', good, f32Bytes([1]), /tensor "w" data ends at offset 8 but the file has only 4 data bytes \(truncated file\)/));

  it('overlapping offsets', () =>
    expectCorrupt(
      'overlap.safetensors',
      {
        a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
        b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
      },
      f32Bytes([1, 2, 3]),
      /tensor "b" data_offsets \[4, 12\] overlap tensor "a"/,
    ));

  it('offsets leaving a gap', () =>
    expectCorrupt(
      'gap.safetensors',
      {
        a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] },
        b: { dtype: 'F32', shape: [1], data_offsets: [8, 12] },
      },
      f32Bytes([1, 2, 3]),
      /do not cover the data: bytes 4\.\.8 before tensor "b"/,
    ));

  it('trailing bytes no tensor owns', () =>
    expectCorrupt('trail.safetensors', good, f32Bytes([1, 2, 3]), /4 trailing bytes after offset 8 belong to no tensor/));

  it('malformed entries', async () => {
    await expectCorrupt('shape.safetensors', { w: { dtype: 'F32', shape: [-2], data_offsets: [0, 8] } }, f32Bytes([1, 2]), /shape \[-2\]/);
    await expectCorrupt('offs.safetensors', { w: { dtype: 'F32', shape: [2], data_offsets: [8, 0] } }, f32Bytes([1, 2]), /data_offsets \[8,0\]/);
    await expectCorrupt('arr.safetensors', null, f32Bytes([1, 2]), /header JSON is not an object|does not start/, '[1,2]');
    await expectCorrupt('meta.safetensors', { __metadata__: { n: 1 }, ...good }, f32Bytes([1, 2]), /"__metadata__.n" is not a string/);
  });

  it('a missing file', async () => {
    await expect(readSafetensorsHeader(join(dir, 'missing.safetensors'))).rejects.toThrow(/missing\.safetensors: cannot open safetensors file \(ENOENT\)/);
  });
});
