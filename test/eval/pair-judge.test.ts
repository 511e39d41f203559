/**
 * The pairwise study judge: verdicts from both orders, the Wilson interval against its formula,
 * and win rates (LLM judge on a fake server on 127.0.0.1, and a scorer offline) against hand counts.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { wilsonInterval } from '../../src/eval/intervals.js';
import { judgeWinRate, llmPairJudge, scorerPairJudge, verdictOfOrders, winRateOf } from '../../src/eval/pair-judge.js';
import { wordCount } from '../../src/eval/scorers.js';
import { choose, startFakeJudge, type FakeJudge } from './fake-judge.js';

const judges: FakeJudge[] = [];
afterEach(async () => {
  for (const j of judges.splice(0)) await j.close();
});

describe('wilsonInterval', () => {
  it("matches Wilson's formula and published values", () => {
    // Newcombe (1998), Table I: 81/263 -> 0.2553 to 0.3662.
    const [lo, hi] = wilsonInterval(81, 263) as [number, number];
    expect(lo).toBeCloseTo(0.2553, 4);
    expect(hi).toBeCloseTo(0.3662, 4);
    const z = 1.959963984540054;
    for (const [k, n] of [[7, 10], [2, 5], [1, 3], [0, 10], [10, 10]]) {
      const p = k / n;
      const c = (p + (z * z) / (2 * n)) / (1 + (z * z) / n);
      const h = (z / (1 + (z * z) / n)) * Math.sqrt((p * (1 - p)) / n + (z * z) / (4 * n * n));
      const [a, b] = wilsonInterval(k, n) as [number, number];
      expect(a).toBeCloseTo(Math.max(0, c - h), 12);
      expect(b).toBeCloseTo(Math.min(1, c + h), 12);
    }
    // 0 successes: the upper bound is z² / (n + z²).
    expect((wilsonInterval(0, 10) as number[])[1]).toBeCloseTo((z * z) / (10 + z * z), 12);
    expect(wilsonInterval(0, 0)).toBeNull();
    expect(() => wilsonInterval(3, 2)).toThrow(RangeError);
  });
});

describe('verdictOfOrders', () => {
  it('tells agreement, splits, ties and invalid answers apart', () => {
    expect(verdictOfOrders('A', 'B', [choose('A'), choose('B')])).toBe('x');
    expect(verdictOfOrders('B', 'A', [choose('B'), choose('A')])).toBe('y');
    expect(verdictOfOrders('A', 'A', [choose('A'), choose('A')])).toBe('inconsistent');
    expect(verdictOfOrders(undefined, 'B', ['More helpful: tie', choose('B')])).toBe('tie');
    expect(verdictOfOrders(undefined, undefined, ['Preferred: "Neither"', 'More helpful: **equal**'])).toBe('tie');
    expect(verdictOfOrders(undefined, undefined, ['More helpful: tie', 'no idea'])).toBe('invalid');
    expect(verdictOfOrders('A', undefined, [choose('A'), 'maybe A?'])).toBe('invalid');
  });
});

describe('win rates', () => {
  it('counts wins, ties (position-inconsistent ones apart), losses and malformed, as counted by hand', async () => {
    // Prefers "good"; always A on "biased" prompts; a declared tie on "tie"; no choice on "malformed".
    const server = await startFakeJudge((r) =>
      r.query.includes('biased') ? choose('A') : r.query.includes('tie') ? 'More helpful: neither' : r.query.includes('malformed') ? '???' : choose(r.a.includes('good') ? 'A' : 'B'),
    );
    judges.push(server);
    const items = [
      { prompt: 'p1', x: 'good 1', y: 'poor 1' }, // win
      { prompt: 'p2', x: 'good 2', y: 'poor 2' }, // win
      { prompt: 'p3', x: 'poor 3', y: 'good 3' }, // loss
      { prompt: 'p4 biased', x: 'good 4', y: 'poor 4' }, // tie (inconsistent)
      { prompt: 'p5 tie', x: 'good 5', y: 'poor 5' }, // tie (declared)
      { prompt: 'p6 malformed', x: 'good 6', y: 'poor 6' }, // malformed
    ];
    const judge = llmPairJudge({ url: server.url, model: 'm', maxAttempts: 1 });
    const r = await judgeWinRate(items, judge);
    expect(r).toEqual({ comparisons: 6, wins: 2, ties: 2, losses: 1, malformed: 1, inconsistent: 1, win_rate: 3 / 5, interval: wilsonInterval(3, 5) });
    expect(judge.stats).toMatchObject({ asked: 12, cached: 0, requests: 12 });
  });

  it('a scorer judges offline: higher score wins, equal ties', async () => {
    const r = await judgeWinRate(
      [
        { prompt: 'p', x: 'a b c', y: 'a' },
        { prompt: 'p', x: 'a', y: 'a b' },
        { prompt: 'p', x: 'a b', y: 'c d' },
      ],
      scorerPairJudge('length', (_p, c) => wordCount(c)),
    );
    expect(r).toMatchObject({ wins: 1, losses: 1, ties: 1, inconsistent: 0, win_rate: 0.5 });
    expect(winRateOf([]).win_rate).toBeNull();
    expect(winRateOf(['invalid']).interval).toBeNull();
  });
});
