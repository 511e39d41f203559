/**
 * Online DPO's pure pieces: ranking two samples per prompt (reward ties, the missing-EOS
 * penalty, an LLM judge over HTTP asked in both orders), its TRL metrics against a direct
 * computation, and the sigmoid / IPO losses on summed log-probs against their formulas with a
 * float64 gradcheck.
 */
import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Graph } from '../../../src/engine/graph.js';
import { gradcheck } from '../../../src/engine/gradcheck.js';
import * as op from '../../../src/engine/ops.js';
import { CompiledGraph } from '../../../src/engine/runtime.js';
import { betaForEpoch, parseOnlineDpoConfig } from '../../../src/train/online/config.js';
import { onlineDpoLosses } from '../../../src/train/online/loss.js';
import { firstChosenByJudge, firstChosenByScores, onlineStepMetrics, pairIndices, penalizedScores } from '../../../src/train/online/pairs.js';
import { openRanker } from '../../../src/train/online/rankers.js';
import { tempDir } from '../helpers.js';

const servers: Server[] = [];
afterAll(() => servers.forEach((s) => s.close()));

/** An OpenAI-compatible judge that prefers the longer response (or always answers `fixed`). */
async function fakeJudge(fixed?: 'A' | 'B'): Promise<{ url: string; asked: string[] }> {
  const asked: string[] = [];
  const server = createServer((req, res) => {
    let raw = '';
    req.on('data', (c: Buffer) => (raw += c.toString('utf8')));
    req.on('end', () => {
      const content = (JSON.parse(raw) as { messages: { content: string }[] }).messages[0].content;
      asked.push(content);
      const a = /Response A:\n(.*)\n\nResponse B:/s.exec(content)?.[1] ?? '';
      const b = /Response B:\n(.*)\n\nFIRST/s.exec(content)?.[1] ?? '';
      const choice = fixed ?? (a.length >= b.length ? 'A' : 'B');
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ choices: [{ message: { role: 'assistant', content: `Comparison: one is longer.\nMore helpful: ${choice}` } }] }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  servers.push(server);
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`, asked };
}

describe('online DPO ranking', () => {
  it('the higher reward wins, a tie goes to the first sample, and the missing-EOS penalty applies before ranking', () => {
    // 3 prompts: samples 0..2 are the first ones, 3..5 the second ones.
    expect(firstChosenByScores([1, 2, 0.5, 0, 2, 3])).toEqual([true, true, false]);
    const eos = [true, false, true, true, true, true];
    const penalized = penalizedScores([1, 2, 0.5, 0, 2, 3], eos, 0.5);
    expect(Array.from(penalized)).toEqual([1, 1.5, 0.5, 0, 2, 3]);
    expect(firstChosenByScores(penalized)).toEqual([true, false, false]); // prompt 1's first sample never ended
    expect(Array.from(penalizedScores([1, 2], [false, false], undefined))).toEqual([1, 2]);
    expect(pairIndices([true, false, false])).toEqual({ chosen: [0, 4, 5], rejected: [3, 1, 2] });
    expect(firstChosenByJudge(['win', 'loss', 'tie', 'malformed'])).toEqual([true, false, true, true]);
  });

  it('a scorer ranks the doubled prompt list, with the penalty', async () => {
    const output = tempDir();
    const c = parseOnlineDpoConfig({ model: 'm', output, prompts: ['p'], scorer: 'length', missingEosPenalty: 10 });
    const ranker = await openRanker(c, { runtime: {}, log: () => {} });
    const prompts = [{ text: 'a', prompt: 'a', origin: { file: 'x', line: 1 } }, { text: 'b', prompt: 'b', origin: { file: 'x', line: 2 } }];
    const r = await ranker.rank(prompts, ['one two three', 'one'], ['one', 'one two'], [false, true, true, true]);
    expect(Array.from(r.scores ?? [])).toEqual([3 - 10, 1, 1, 2]);
    expect(r.firstChosen).toEqual([false, false]);
    expect(ranker.source).toBe('scorer:length');
  });

  it('an LLM judge ranks pairs asked in both orders; a position-biased judge gives ties, which go to the first sample', async () => {
    const judge = await fakeJudge();
    const output = tempDir();
    const c = parseOnlineDpoConfig({ model: 'm', output, prompts: ['p'], judgeUrl: judge.url, judgeModel: 'fake' });
    const ranker = await openRanker(c, { runtime: {}, log: () => {} });
    const prompts = ['Say hi', 'Say bye', 'Same'].map((t, i) => ({ text: t, prompt: t, origin: { file: 'x', line: i } }));
    const r = await ranker.rank(prompts, ['hi', 'goodbye now', 'same'], ['hello there', 'bye', 'same'], [true, true, true, true, true, true]);
    expect(r).toEqual({ firstChosen: [false, true, true] });
    expect(r.scores).toBeUndefined();
    // Two different pairs asked in both orders; identical completions are a tie without asking.
    expect(judge.asked).toHaveLength(4);
    expect(judge.asked[0]).toContain('Query: Say hi');
    expect(existsSync(join(output, 'judge-verdicts.jsonl'))).toBe(true);
    // Asked again: answered from the cache in the output folder.
    await ranker.rank(prompts, ['hi', 'goodbye now', 'same'], ['hello there', 'bye', 'same'], []);
    expect(judge.asked).toHaveLength(4);

    const biased = await fakeJudge('A');
    const c2 = parseOnlineDpoConfig({ model: 'm', output: tempDir(), prompts: ['p'], judgeUrl: biased.url, judgeModel: 'fake' });
    const r2 = await (await openRanker(c2, { runtime: {}, log: () => {} })).rank(prompts.slice(0, 1), ['hi'], ['hello there'], []);
    expect(r2.firstChosen).toEqual([true]);
  });

  it('config: TRL defaults, exactly one ranker, beta per epoch', () => {
    const c = parseOnlineDpoConfig({ model: 'm', output: 'o', prompts: 'p.jsonl', scorer: 'sentiment' });
    expect(c).toMatchObject({ learningRate: 5e-7, temperature: 0.9, maxNewTokens: 64, maxLength: 512, beta: [0.1], lossType: 'sigmoid', topK: 0, topP: 1, batchSize: 8 });
    expect(parseOnlineDpoConfig({ model: 'm', output: 'o', prompts: 'p', scorer: 'length', beta: 0.3 }).beta).toEqual([0.3]);
    expect(() => parseOnlineDpoConfig({ model: 'm', output: 'o', prompts: 'p' })).toThrow(/exactly one of rewardModel, scorer and judgeUrl/);
    expect(() => parseOnlineDpoConfig({ model: 'm', output: 'o', prompts: 'p', scorer: 'length', rewardModel: 'r' })).toThrow(/exactly one/);
    expect(() => parseOnlineDpoConfig({ model: 'm', output: 'o', prompts: 'p', judgeUrl: 'http://x' })).toThrow(/judgeUrl needs judgeModel/);
    expect(() => parseOnlineDpoConfig({ model: 'm', output: 'o', prompts: 'p', judgeUrl: 'http://x', judgeModel: 'j', missingEosPenalty: 1 })).toThrow(/missingEosPenalty/);
    expect(() => parseOnlineDpoConfig({ model: 'm', output: 'o', prompts: 'p', scorer: 'length', lossType: 'hinge' })).toThrow(/lossType/);
    expect(() => parseOnlineDpoConfig({ model: 'm', output: 'o', prompts: 'p', scorer: 'length', maxNewTokens: 600 })).toThrow(/maxNewTokens \(600\)/);
    expect([0, 0.99, 1, 2.5, 7].map((e) => betaForEpoch([0.1, 0.2, 0.3], e))).toEqual([0.1, 0.1, 0.2, 0.3, 0.3]);
  });
});

describe('online DPO metrics and loss', () => {
  it('metrics equal TRL formulas computed directly', () => {
    // B = 2 pairs: sequences 0, 1 chosen; 2, 3 rejected.
    const policy = [-10, -12, -11, -9];
    const reference = [-10.5, -11, -10, -9.5];
    const scores = [0.9, 0.4, 0.1, 0.6];
    const beta = 0.2;
    const m = onlineStepMetrics({ policy, reference, scores, containsEos: [true, false, true, true], beta });
    const kl = [0.5, -1, -1, 0.5];
    const mean = (a: number[]): number => a.reduce((s, v) => s + v, 0) / a.length;
    expect(m['objective/kl']).toBeCloseTo(mean(kl), 12);
    expect(m['objective/entropy']).toBeCloseTo(10.5, 12);
    expect(m['objective/non_score_reward']).toBeCloseTo(-beta * mean(kl), 12);
    expect(m['objective/rlhf_reward']).toBeCloseTo(mean(scores) - beta * mean(kl), 12);
    expect(m['objective/scores']).toBeCloseTo(0.5, 12);
    expect(m['objective/scores_margin']).toBeCloseTo(((0.9 - 0.1) + (0.4 - 0.6)) / 2, 12);
    expect(m['rewards/chosen']).toBeCloseTo(beta * (0.5 - 1) / 2, 12);
    expect(m['rewards/rejected']).toBeCloseTo(beta * (-1 + 0.5) / 2, 12);
    expect(m['rewards/margins']).toBeCloseTo(beta * ((0.5 + 1) + (-1 - 0.5)) / 2, 12);
    expect(m['rewards/accuracies']).toBe(0.5);
    expect(m['logps/chosen']).toBe(-11);
    expect(m['logps/rejected']).toBe(-10);
    expect(m['val/contain_eos_token']).toBe(0.75);
    expect(m.beta).toBe(beta);
    const judged = onlineStepMetrics({ policy, reference, containsEos: [true, true, true, true], beta });
    expect(Object.keys(judged).filter((k) => k.includes('scores') || k.includes('rlhf'))).toEqual([]);
  });

  const chosen = [-3.2, -1.4, -7.5, -0.9];
  const rejected = [-2.5, -4.8, -6.1, -2.2];
  const refChosen = [-3.0, -2.0, -7.0, -1.5];
  const refRejected = [-2.9, -4.0, -6.5, -2.0];
  for (const type of ['sigmoid', 'ipo'] as const) {
    it(`${type}: formula on summed log-probs and a float64 gradcheck`, async () => {
      const beta = 0.3;
      const g = new Graph();
      const pol = g.input('pol', 'float64', [2, 4]);
      const ref = g.input('ref', 'float64', [2, 4]);
      const b = g.input('beta', 'float64', [1]);
      const c = await CompiledGraph.compile({ out: onlineDpoLosses(type, pol, ref, b) }, { threads: 1 });
      const out = await c.run({
        pol: { data: Float64Array.from([...chosen, ...rejected]), dims: [2, 4] },
        ref: { data: Float64Array.from([...refChosen, ...refRejected]), dims: [2, 4] },
        beta: { data: Float64Array.of(beta), dims: [1] },
      });
      await c.release();
      const got = Array.from(out.out.data as Float64Array);
      got.forEach((v, i) => {
        const logits = chosen[i] - rejected[i] - (refChosen[i] - refRejected[i]);
        const want = type === 'sigmoid' ? Math.log1p(Math.exp(-beta * logits)) : (logits - 1 / (2 * beta)) ** 2;
        expect(v).toBeCloseTo(want, 12);
      });
      const r = await gradcheck(
        [{ name: 'pol', shape: [2, 4], values: [...chosen, ...rejected] }, { name: 'ref', shape: [2, 4], values: [...refChosen, ...refRejected] }],
        (x, gg) => onlineDpoLosses(type, x.pol, x.ref, op.constant(gg, Float64Array.of(beta), 'float64', [1])),
      );
      expect(r.maxRelError, JSON.stringify(r.worst)).toBeLessThan(1e-6);
    });
  }
});
