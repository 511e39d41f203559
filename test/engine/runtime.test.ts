/** Runtime behaviour the training loop relies on: zero-copy feeds, in-place outputs, chunked outputs. */
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { Graph } from '../../src/engine/graph.js';
import * as op from '../../src/engine/ops.js';
import { CompiledGraph, sessionThreads } from '../../src/engine/runtime.js';
import { availableParallelism } from 'node:os';

function ramp(n: number): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => (i % 97) / 7);
}

describe('runtime buffers (onnxruntime-node 1.30)', () => {
  it('ORT writes a preallocated output in place, but its binding hands back a separate copy', async () => {
    const g = new Graph();
    const x = g.input('x', 'float32', [64]);
    // Chunking off: talk to ORT about the one output directly.
    const c = await CompiledGraph.compile({ y: op.mul(x, 2) }, { threads: 1, outputChunkElements: 0 });
    const session = (c as unknown as { session: ort.InferenceSession }).session;
    const out = new Float32Array(64).fill(-1);
    const fetch = new ort.Tensor('float32', out, [64]);
    const r = await session.run({ x: new ort.Tensor('float32', ramp(64), [64]) }, { y: fetch });
    expect(out[5]).toBeCloseTo((2 * 5) / 7, 6); // written in place
    const returned = r.y.data as Float32Array;
    expect(Array.from(returned)).toEqual(Array.from(out));
    returned[0] = 1234;
    expect(out[0]).not.toBe(1234); // ... and the result is a copy, not a view of our buffer
    await c.release();
  });

  it('run() returns the caller\'s buffer for preallocated outputs', async () => {
    const g = new Graph();
    const x = g.input('x', 'float32', [8]);
    const c = await CompiledGraph.compile({ y: op.exp(x) }, { threads: 1 });
    const out = new Float32Array(8);
    const r = await c.run({ x: { data: new Float32Array(8), dims: [8] } }, { y: { data: out, dims: [8] } });
    expect(r.y.data).toBe(out);
    expect(Array.from(out)).toEqual(new Array(8).fill(1));
    await c.release();
  });

  it('large static outputs come back in chunks written into one array, in place or fresh', async () => {
    const n = 1000;
    const g = new Graph();
    const x = g.input('x', 'float32', [10, 100]);
    const y = op.add(op.mul(x, 3), 1);
    const s = op.sum(x);
    const chunked = await CompiledGraph.compile({ y, s }, { threads: 1, outputChunkElements: 64, outputChunkMinBytes: 0 });
    const plain = await CompiledGraph.compile({ y, s }, { threads: 1, outputChunkElements: 0 });
    expect(chunked.outputNames).toEqual(['y', 's']);
    const feeds = { x: { data: ramp(n), dims: [10, 100] } };
    const want = await plain.run(feeds);
    const fresh = await chunked.run(feeds);
    expect(fresh.y.dims).toEqual([10, 100]);
    expect(Array.from(fresh.y.data as Float32Array)).toEqual(Array.from(want.y.data as Float32Array));
    expect(fresh.s.data[0]).toBe(want.s.data[0]);
    const out = new Float32Array(n);
    const r = await chunked.run(feeds, { y: { data: out, dims: [10, 100] } });
    expect(r.y.data).toBe(out);
    expect(Array.from(out)).toEqual(Array.from(want.y.data as Float32Array));
    await expect(chunked.run(feeds, { y: { data: new Float32Array(10), dims: [10] } })).rejects.toThrow(
      "run: output buffer for 'y' must be float32 with 1000 elements, got float32 with 10",
    );
    await chunked.release();
    await plain.release();
  });

  it('an output written into the buffer of its own input (in-place update) is correct when chunked', async () => {
    const n = 300;
    const g = new Graph();
    const p = g.input('p', 'float32', [n]);
    const gr = g.input('g', 'float32', [n]);
    const c = await CompiledGraph.compile({ p_new: op.sub(p, op.mul(gr, 0.5)) }, { threads: 2, outputChunkElements: 32, outputChunkMinBytes: 0 });
    const buf = ramp(n);
    const expected = Array.from(buf, (v) => Math.fround(v - 0.5));
    const pt = { data: buf, dims: [n] };
    await c.run({ p: pt, g: { data: new Float32Array(n).fill(1), dims: [n] } }, { p_new: pt });
    expect(Array.from(buf)).toEqual(expected);
    await c.release();
  });
});

describe('threads', () => {
  it('--threads above the core count is capped at the cores this process may use', () => {
    expect(sessionThreads(10_000)).toBe(availableParallelism());
    expect(sessionThreads(1)).toBe(1);
  });
});
