/**
 * Judge agreement against a fake OpenAI-compatible judge on 127.0.0.1 with scripted verdicts
 * (a judge that prefers "good" completions, position bias, tie answers, malformed answers, error
 * statuses); every figure is checked against a hand count, the intervals against Wilson's formula.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { comparisonKey, humanHumanAgreement, humanLabels, judgeAgreement, loadHumanLabels, type HumanJudgment } from '../../src/eval/judge-agreement.js';
import { wilsonInterval } from '../../src/eval/intervals.js';
import { llmPairJudge, scorerPairJudge } from '../../src/eval/pair-judge.js';
import { VerdictCache } from '../../src/eval/judge.js';
import { wordCount } from '../../src/eval/scorers.js';
import { tempDir } from '../train/helpers.js';
import { choose, startFakeJudge, type FakeJudge, type FakeJudgeReply, type FakeJudgeRequest } from './fake-judge.js';

const judges: FakeJudge[] = [];
afterEach(async () => {
  for (const j of judges.splice(0)) await j.close();
});

async function fake(answer: (r: FakeJudgeRequest) => FakeJudgeReply): Promise<FakeJudge> {
  const j = await startFakeJudge(answer);
  judges.push(j);
  return j;
}

/** Prefers the response with "good"; "biased" queries: always A; "tie": a tie; "malformed": no choice. */
function scripted(r: FakeJudgeRequest): string {
  if (r.query.includes('biased')) return choose('A');
  if (r.query.includes('tie')) return 'Comparison: they are equally helpful.\nMore helpful: Tie';
  if (r.query.includes('malformed')) return 'I would rather not say.';
  return choose(r.a.includes('good') ? 'A' : 'B');
}

const j = (prompt: string, chosen: string, rejected: string): HumanJudgment => ({ prompt, chosen, rejected, origin: { file: 'mem', line: 0 } });

// Alice and Bob label partly the same comparisons (see the expected counts below).
const alice = humanLabels('alice', [
  j('q1', 'good 1', 'poor 1'), // judge agrees
  j('q2', 'poor 2', 'good 2'), // judge disagrees
  j('q3 biased', 'good 3', 'poor 3'), // judge: A both times -> inconsistent
  j('q4 tie', 'good 4', 'poor 4'), // judge: tie
  j('q5 malformed', 'good 5', 'poor 5'), // judge: invalid
  j('q6', 'good 6', 'poor 6'), // judge agrees
]);
const bob = humanLabels('bob', [
  j('q1', 'good 1', 'poor 1'), // agrees with alice and the judge
  j('q2', 'good 2', 'poor 2'), // disagrees with alice, agrees with the judge
  j('q3 biased', 'poor 3', 'good 3'), // disagrees with alice; judge inconsistent
  j('q6', 'poor 6', 'good 6'), // disagrees with alice and the judge
  j('q7', 'good 7', 'poor 7'), // only bob; judge agrees
]);

describe('judgeAgreement with an LLM judge', () => {
  it('counts agree / disagree / ties / inconsistent / invalid per person, pooled, and human-human, as counted by hand', async () => {
    const server = await fake(scripted);
    const dir = tempDir();
    const cacheFile = VerdictCache.fileIn(dir);
    const judge = llmPairJudge({ url: server.url, model: 'fake-gpt', cacheFile, maxAttempts: 1 });
    const r = await judgeAgreement([alice, bob], judge);
    // 7 distinct comparisons (q1-q7), each asked in both orders.
    expect(r.comparisons).toBe(7);
    expect(server.requests).toHaveLength(14);
    expect(r.verdicts).toEqual({ decisive: 4, tie: 1, inconsistent: 1, invalid: 1 });
    const [a, b, all] = r.judge_human;
    expect(a).toMatchObject({ humans: 'alice', judgments: 6, agree: 2, disagree: 1, ties: 1, inconsistent: 1, invalid: 1 });
    expect(a.agreement).toEqual({ n: 5, agree: 2, rate: 2 / 5, interval: wilsonInterval(2, 5) });
    expect(a.decisive_agreement).toEqual({ n: 3, agree: 2, rate: 2 / 3, interval: wilsonInterval(2, 3) });
    expect(b).toMatchObject({ humans: 'bob', judgments: 5, agree: 3, disagree: 1, ties: 0, inconsistent: 1, invalid: 0 });
    expect(b.agreement.rate).toBe(3 / 5);
    expect(b.decisive_agreement.rate).toBe(3 / 4);
    expect(all).toMatchObject({ humans: 'all', judgments: 11, agree: 5, disagree: 2, ties: 1, inconsistent: 2, invalid: 1 });
    expect(all.agreement.rate).toBe(5 / 10);
    // Human-human: q1, q2, q3 and q6 shared; they agree on q1 only.
    expect(r.human_human).toEqual([{ a: 'alice', b: 'bob', shared: 4, agreement: { n: 4, agree: 1, rate: 1 / 4, interval: wilsonInterval(1, 4) } }]);
    // Valid A/B answers: q1, q2, q6, q7 one A each, q3 two: 6 of 10.
    expect(r.llm).toEqual({ asked: 14, cached: 0, requests: 14, first_position_rate: 0.6 });
    expect(r.judge).toMatchObject({ kind: 'llm', model: 'fake-gpt', cache: cacheFile });

    // The verdicts are cached: a second run asks nothing and reports the same figures.
    const again = await judgeAgreement([alice, bob], llmPairJudge({ url: server.url, model: 'fake-gpt', cacheFile, maxAttempts: 1 }));
    expect(server.requests).toHaveLength(14);
    expect(again.llm).toMatchObject({ asked: 0, cached: 14 });
    expect(again.judge_human).toEqual(r.judge_human);
    expect(readFileSync(cacheFile, 'utf8').trim().split('\n')).toHaveLength(14);
  });

  it('shows the orders: the human-chosen completion as A, then as B', async () => {
    const server = await fake(scripted);
    await judgeAgreement([humanLabels('one', [j('q1', 'good 1', 'poor 1')])], llmPairJudge({ url: server.url, model: 'm', maxAttempts: 1 }));
    expect(server.requests.map((q) => [q.a, q.b])).toEqual([
      ['good 1', 'poor 1'],
      ['poor 1', 'good 1'],
    ]);
  });

  it('a judge that always answers A is position-inconsistent everywhere: agreement 0, no decisive verdict', async () => {
    const server = await fake(() => choose('A'));
    const r = await judgeAgreement([alice], llmPairJudge({ url: server.url, model: 'm', maxAttempts: 1 }));
    expect(r.verdicts).toEqual({ decisive: 0, tie: 0, inconsistent: 6, invalid: 0 });
    expect(r.judge_human[0].agreement).toEqual({ n: 6, agree: 0, rate: 0, interval: wilsonInterval(0, 6) });
    expect(r.judge_human[0].decisive_agreement).toEqual({ n: 0, agree: 0, rate: null, interval: null });
    expect(r.llm?.first_position_rate).toBe(1);
  });

  it('uses the summarization template when asked', async () => {
    const server = await fake((q) => choose(q.a.includes('good') ? 'A' : 'B'));
    const r = await judgeAgreement([humanLabels('one', [j('post', 'good', 'poor')])], llmPairJudge({ url: server.url, model: 'm', template: 'summarization', maxAttempts: 1 }));
    expect(server.requests[0].content).toMatch(/^Which of the following summaries/);
    expect(r.judge_human[0].agree).toBe(1);
  });

  it('stops with the HTTP status on an error a retry cannot fix, and after the attempts on a 500', async () => {
    const denied = await fake(() => ({ status: 401 }));
    await expect(judgeAgreement([alice], llmPairJudge({ url: denied.url, model: 'm' }))).rejects.toThrow(/HTTP 401/);
    const failing = await fake(() => ({ status: 500 }));
    await expect(judgeAgreement([alice], llmPairJudge({ url: failing.url, model: 'm', maxAttempts: 2, sleep: async () => {} }))).rejects.toThrow(/no answer after 2 attempts \(last: HTTP 500/);
  });
});

describe('human labels', () => {
  it('rejects files that share no comparison, naming why', () => {
    const other = humanLabels('carol', [j('q9', 'x', 'y')]);
    expect(() => humanHumanAgreement([alice, other])).toThrow('alice and carol share no labelled comparison (no prompt in common)');
    const resampled = humanLabels('dave', [j('q1', 'good 1b', 'poor 1b')]);
    expect(() => humanHumanAgreement([alice, resampled])).toThrow('1 prompt in common but different completions');
  });

  it('pools every pair of files for three people', () => {
    const carol = humanLabels('carol', [j('q1', 'poor 1', 'good 1'), j('q2', 'good 2', 'poor 2')]);
    const hh = humanHumanAgreement([alice, bob, carol]);
    // alice-bob 1/4; alice-carol: q1 no, q2 no -> 0/2; bob-carol: q1 no, q2 yes -> 1/2; pooled 2/8.
    expect(hh.map((h) => [h.a, h.b, h.shared, h.agreement.agree])).toEqual([
      ['alice', 'bob', 4, 1],
      ['alice', 'carol', 2, 0],
      ['bob', 'carol', 2, 1],
      ['all', 'all', 8, 2],
    ]);
  });

  it('reads prompt/chosen/rejected and ranking files with the data readers; repeated comparisons are dropped', async () => {
    const dir = tempDir();
    const pairs = join(dir, 'pairs.jsonl');
    writeFileSync(pairs, ['{"prompt":"p","chosen":"a","rejected":"b"}', '{"prompt":"p","chosen":"b","rejected":"a"}', '{"prompt":"q","chosen":"c","rejected":"d"}'].join('\n'));
    const l = await loadHumanLabels(pairs);
    expect(l.judgments.map((x) => [x.prompt, x.chosen, x.rejected])).toEqual([
      ['p', 'a', 'b'],
      ['q', 'c', 'd'],
    ]);
    expect(l.duplicates).toBe(1);
    const ranks = join(dir, 'ranks.jsonl');
    writeFileSync(ranks, '{"prompt":"p","completions":["one two three","one two","one"]}\n');
    const r = await loadHumanLabels(ranks);
    expect(r.judgments.map((x) => [x.chosen, x.rejected])).toEqual([
      ['one two three', 'one two'],
      ['one two three', 'one'],
      ['one two', 'one'],
    ]);
    expect(comparisonKey('p', 'a', 'b')).toBe(comparisonKey('p', 'b', 'a'));
    // dpo label's sidecar of ties and skips would read as rankings: refused.
    const sidecar = join(dir, 'prefs.skipped.jsonl');
    writeFileSync(sidecar, '{"prompt":"p","completions":["a","b"],"label":"tie"}\n');
    await expect(loadHumanLabels(sidecar)).rejects.toThrow("prefs.skipped.jsonl: this is dpo label's file of ties and skips, not preferences");
    // In a folder it is left out; the other files are read.
    const folder = join(dir, 'labels');
    mkdirSync(folder);
    writeFileSync(join(folder, 'prefs.jsonl'), '{"prompt":"p","chosen":"a","rejected":"b"}\n');
    writeFileSync(join(folder, 'prefs.skipped.jsonl'), '{"prompt":"q","completions":["c","d"],"label":"tie"}\n');
    expect((await loadHumanLabels(folder)).judgments.map((x) => x.prompt)).toEqual(['p']);
    const chat = join(dir, 'chat.jsonl');
    writeFileSync(chat, '{"prompt":[{"role":"user","content":"hi"}],"chosen":[{"role":"assistant","content":"a"}],"rejected":[{"role":"assistant","content":"b"}]}\n');
    await expect(loadHumanLabels(chat)).rejects.toThrow('chat.jsonl: conversational (message-list) rows; the judge reads text rows');
  });

  it('malformed rows fail naming file and line, or are skipped and counted', async () => {
    const dir = tempDir();
    const f = join(dir, 'bad.jsonl');
    writeFileSync(f, '{"prompt":"p","chosen":"a","rejected":"b"}\n{"prompt":"q","chosen":"a"}\nnot json\n');
    await expect(loadHumanLabels(f)).rejects.toThrow(/2 malformed data rows[\s\S]*bad\.jsonl:2: missing field 'rejected'/);
    const l = await loadHumanLabels(f, { onBadRow: 'skip' });
    expect(l.judgments).toHaveLength(1);
    expect(l.badRows.map((b) => b.line)).toEqual([2, 3]);
  });
});

describe('judgeAgreement with a scorer (offline)', () => {
  it('the higher score wins, equal scores tie', async () => {
    const labels = humanLabels('h', [j('p', 'one two three', 'one'), j('p', 'one', 'one two'), j('p', 'x y', 'z w')]);
    const r = await judgeAgreement([labels], scorerPairJudge('length', (_p, c) => wordCount(c)));
    expect(r.judge_human[0]).toMatchObject({ agree: 1, disagree: 1, ties: 1, inconsistent: 0, invalid: 0 });
    expect(r.judge_human[0].agreement.rate).toBe(1 / 3);
    expect(r.llm).toBeUndefined();
  });
});
