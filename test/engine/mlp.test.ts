/** A small MLP fits y = sin(x1) + x2² with a compiled TrainStep and AdamW. */
import { describe, expect, it } from 'vitest';
import * as nn from '../../src/engine/nn.js';
import * as op from '../../src/engine/ops.js';
import { TrainStep } from '../../src/engine/train-step.js';

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

function normal(rand: () => number, n: number, std: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = Math.max(rand(), 1e-12);
    a[i] = std * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand());
  }
  return a;
}

describe('MLP regression', () => {
  it.each([
    ['tanh', (h: Parameters<typeof op.tanh>[0]) => op.tanh(h)],
    ['geluTanh', (h: Parameters<typeof op.tanh>[0]) => nn.geluTanh(h)],
  ])('a 2-layer %s MLP fits sin(x1) + x2^2 (loss drops > 10x)', async (_name, act) => {
    const rand = lcg(42);
    const N = 256;
    const H = 32;
    const x = new Float32Array(N * 2);
    const y = new Float32Array(N);
    for (let i = 0; i < N; i++) {
      const x1 = rand() * 4 - 2;
      const x2 = rand() * 4 - 2;
      x[2 * i] = x1;
      x[2 * i + 1] = x2;
      y[i] = Math.sin(x1) + x2 * x2;
    }
    const step = await TrainStep.create(
      [
        { name: 'w1', shape: [2, H], data: normal(rand, 2 * H, 1) },
        { name: 'b1', shape: [H], data: normal(rand, H, 0.5) },
        { name: 'w2', shape: [H, 1], data: normal(rand, H, 1 / Math.sqrt(H)) },
        { name: 'b2', shape: [1], data: new Float32Array(1) },
      ],
      (g, p) => {
        const xs = g.input('x', 'float32', ['batch', 2]);
        const ys = g.input('y', 'float32', ['batch']);
        const pred = op.squeeze(nn.linear(act(nn.linear(xs, p.w1, p.b1)), p.w2, p.b2), -1);
        const err = op.sub(pred, ys);
        return { loss: op.mean(op.mul(err, err)) };
      },
      { name: 'adamw', weightDecay: 1e-4 },
      { threads: 1 },
    );
    const data = { x: { data: x, dims: [N, 2] }, y: { data: y, dims: [N] } };
    const losses: number[] = [];
    for (let i = 0; i < 300; i++) {
      const lr = i < 200 ? 0.02 : 0.005;
      losses.push((await step.step(data, lr)).loss);
    }
    await step.release();
    const first = losses[0];
    const last = Math.min(...losses.slice(-20));
    expect(Number.isFinite(last)).toBe(true);
    expect(last).toBeLessThan(first / 10);
    expect(last).toBeLessThan(0.02);
  });
});
