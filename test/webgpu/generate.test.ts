/**
 * KV-cached greedy generation on WebGPU gives the CPU's tokens (batched, so with left padding),
 * and no op of the prefill or decode-step graph falls back to the CPU.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { Generator } from '../../src/generate/generator.js';
import { describeWebgpu, fallbacks, floatCopies, loadFixture, placedNodes } from './helpers.js';

const profiles = mkdtempSync(join(tmpdir(), 'dpo-ts-webgpu-gen-'));
afterAll(() => rmSync(profiles, { recursive: true, force: true }));

const prompt = (n: number, vocab: number, seed: number): number[] => Array.from({ length: n }, (_, i) => (seed * 37 + i * 11 + 3) % vocab);

describeWebgpu('greedy KV-cached generation on WebGPU', () => {
  for (const family of ['gpt2', 'llama']) {
    it(`${family}: the CPU's tokens, no fallback`, async () => {
      const { model, weights } = await loadFixture(family);
      const prompts = [prompt(5, model.config.vocabSize, 1), prompt(3, model.config.vocabSize, 2)];
      const options = { maxNewTokens: 6, batchSize: 2 };
      const cpu = await Generator.create(model, { runtime: { threads: 1 } });
      const expected = (await cpu.generateIds(weights, prompts, options)).sequences.map((s) => s[0].tokenIds);
      await cpu.release();
      const dir = join(profiles, family);
      mkdirSync(dir);
      const gpu = await Generator.create(model, { runtime: { threads: 1, executionProvider: 'webgpu', profilePrefix: join(dir, 'decode') } });
      const got = (await gpu.generateIds(weights, prompts, options)).sequences.map((s) => s[0].tokenIds);
      await gpu.release();
      expect(got).toEqual(expected);
      expect(new Set(expected.flat()).size).toBeGreaterThan(2);

      const nodes = placedNodes(dir);
      const ops = new Set(nodes.map((n) => n.op));
      expect(ops.has('MatMul') || ops.has('FusedMatMul')).toBe(true);
      expect(fallbacks(nodes).map((n) => `${n.op} (${n.node}) ${JSON.stringify(n.outputs)}`)).toEqual([]);
      expect(floatCopies(nodes).map((n) => `${n.op} (${n.node}) ${JSON.stringify(n.outputs)}`)).toEqual([]);
    }, 600_000);
  }
});
