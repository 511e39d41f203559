/**
 * The LLM judge client against a local stub of an OpenAI-compatible /chat/completions server:
 * both orders, malformed answers, 429 + Retry-After, 500, Bearer key, the verdict cache (a
 * second run asks nothing) and resuming an interrupted run.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  chatCompletionsUrl,
  combineOrders,
  countOutcomes,
  JudgeClient,
  judgePairs,
  JudgeStopped,
  parseJudgeAnswer,
  parseRetryAfter,
  renderJudgePrompt,
  VerdictCache,
  type JudgePair,
} from '../../src/eval/judge.js';
import { tempDir } from '../train/helpers.js';

interface Seen {
  path: string;
  auth: string | undefined;
  body: { model: string; temperature: number; messages: { role: string; content: string }[] };
}

/** What the stub does with a request: answer text, an HTTP error once, or drop the connection. */
type Behaviour = (content: string, seen: Seen[]) => { status?: number; headers?: Record<string, string>; answer?: string; drop?: boolean; raw?: string; hang?: boolean };

async function stub(behaviour: Behaviour): Promise<{ url: string; seen: Seen[]; server: Server }> {
  const seen: Seen[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let raw = '';
    req.on('data', (c: Buffer) => (raw += c.toString('utf8')));
    req.on('end', () => {
      const body = JSON.parse(raw) as Seen['body'];
      const entry = { path: req.url ?? '', auth: req.headers.authorization, body };
      const b = behaviour(body.messages[0].content, seen);
      seen.push(entry);
      if (b.drop) {
        req.socket.destroy();
        return;
      }
      if (b.hang) return;
      res.writeHead(b.status ?? 200, { 'content-type': 'application/json', ...b.headers });
      if (b.raw !== undefined) {
        res.end(b.raw);
        return;
      }
      res.end(b.status && b.status !== 200 ? JSON.stringify({ error: { message: 'stub error' } }) : JSON.stringify({ choices: [{ message: { role: 'assistant', content: b.answer } }] }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  servers.push(server);
  return { url: `http://127.0.0.1:${port}/v1`, seen, server };
}

const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((resolve) => s.close(resolve));
  }
});

/** Response A / B texts of a dialogue comparison prompt. */
function responses(content: string): { query: string; a: string; b: string } {
  const m = /Query: ([\s\S]*?)\n\nResponse A:\n([\s\S]*?)\n\nResponse B:\n([\s\S]*?)\n\nFIRST/.exec(content);
  if (!m) throw new Error(`unexpected judge prompt: ${content}`);
  return { query: m[1], a: m[2], b: m[3] };
}

const verdict = (x: 'A' | 'B'): string => `Comparison: Response ${x} is clearly better.\nMore helpful: ${x}`;

/** Prefers the response containing "good"; always "A" for biased queries; nonsense for "malformed". */
const sensibleJudge: Behaviour = (content, seen) => {
  const { query, a } = responses(content);
  if (query.includes('malformed')) return { answer: 'Both responses have merits; I cannot choose.' };
  // The first request about these queries fails once.
  const first = !seen.some((s) => responses(s.body.messages[0].content).query === query);
  if (query.includes('ratelimit') && first) return { status: 429, headers: { 'retry-after': '2' } };
  if (query.includes('flaky') && first) return { status: 500 };
  if (query.includes('biased')) return { answer: verdict('A') };
  return { answer: verdict(a.includes('good') ? 'A' : 'B') };
};

const PAIRS: JudgePair[] = [
  { query: 'q1 win', policy: 'a good answer', baseline: 'a poor answer' },
  { query: 'q2 loss', policy: 'a poor answer', baseline: 'a good answer' },
  { query: 'q3 biased', policy: 'one answer', baseline: 'another answer' },
  { query: 'q4 malformed', policy: 'x good', baseline: 'y' },
  { query: 'q5 ratelimit', policy: 'good, after a 429', baseline: 'meh' },
  { query: 'q6 flaky', policy: 'bad', baseline: 'good, after a 500' },
  { query: 'q7 same', policy: 'identical', baseline: 'identical' },
];

describe('LLM judge', () => {
  it('parses verdicts strictly and never guesses', () => {
    expect(parseJudgeAnswer('Comparison: A is more specific.\nMore helpful: A')).toBe('A');
    expect(parseJudgeAnswer('Comparison: x\nMore helpful: "B"')).toBe('B');
    expect(parseJudgeAnswer('Comparison: x\n**More helpful:** Response B.')).toBe('B');
    expect(parseJudgeAnswer('Comparison: x\nPreferred: <"A">')).toBe('A');
    expect(parseJudgeAnswer('Comparison: summary B is shorter\nB')).toBe('B');
    expect(parseJudgeAnswer('Comparison: x\nMore helpful: A or B')).toBeUndefined();
    expect(parseJudgeAnswer('Comparison: x\nMore helpful: neither')).toBeUndefined();
    expect(parseJudgeAnswer('I think A is better')).toBeUndefined();
    expect(parseJudgeAnswer('')).toBeUndefined();
    expect(combineOrders('A', 'B')).toBe('win');
    expect(combineOrders('B', 'A')).toBe('loss');
    expect(combineOrders('A', 'A')).toBe('tie');
    expect(combineOrders('A', undefined)).toBe('malformed');
    expect(countOutcomes(['win', 'tie', 'loss', 'malformed', 'win'])).toEqual({ comparisons: 5, wins: 2, ties: 1, losses: 1, malformed: 1, win_rate: 2.5 / 4 });
    expect(chatCompletionsUrl('http://h:1/v1/')).toBe('http://h:1/v1/chat/completions');
    expect(chatCompletionsUrl('http://h:1/v1/chat/completions')).toBe('http://h:1/v1/chat/completions');
    expect(() => chatCompletionsUrl('h:1/v1')).toThrow(/http/);
    expect(parseRetryAfter('3')).toBe(3000);
    expect(parseRetryAfter(new Date(10_000).toUTCString(), 4000)).toBe(6000);
    expect(parseRetryAfter(null)).toBeUndefined();
    const p = renderJudgePrompt('dialogue', 'Q?', 'ra', 'rb');
    expect(p).toContain('For the following query to a chatbot, which response is more helpful?');
    expect(p).toContain('Response A:\nra\n\nResponse B:\nrb');
    expect(p).toContain('More helpful: <"A" or "B">');
    expect(renderJudgePrompt('summarization', 'post', 'sa', 'sb')).toContain('Preferred: <"A" or "B">');
  });

  it('asks both orders, retries 429 (Retry-After) and 500, counts malformed, caches, and a second run asks nothing', async () => {
    const s = await stub(sensibleJudge);
    const cacheDir = tempDir('dpo-ts-judge-');
    const sleeps: number[] = [];
    const retries: string[] = [];
    const client = new JudgeClient({ url: s.url, model: 'judge-1', apiKey: 'sk-test', baseDelayMs: 10, sleep: async (ms) => void sleeps.push(ms), onRetry: (r) => retries.push(r.reason) });
    const cache = await VerdictCache.open(VerdictCache.fileIn(cacheDir));
    const r = await judgePairs(PAIRS, { client, cache, concurrency: 1 });
    expect(r.outcomes).toEqual(['win', 'loss', 'tie', 'malformed', 'win', 'loss', 'tie']);
    expect(r.counts).toEqual({ comparisons: 7, wins: 2, ties: 2, losses: 2, malformed: 1, win_rate: 0.5 });
    // 6 pairs x 2 orders asked (identical completions are a tie without asking) + one 429 + one 500.
    expect(r.asked).toBe(12);
    expect(r.cached).toBe(0);
    expect(s.seen).toHaveLength(14);
    expect(client.requests).toBe(14);
    expect(sleeps[0]).toBe(2000); // Retry-After: 2
    expect(sleeps[1]).toBeGreaterThanOrEqual(5);
    expect(sleeps[1]).toBeLessThanOrEqual(10); // backoff 10 ms with jitter
    expect(retries).toEqual([expect.stringMatching(/HTTP 429/), expect.stringMatching(/HTTP 500/)]);
    for (const seen of s.seen) {
      expect(seen.path).toBe('/v1/chat/completions');
      expect(seen.auth).toBe('Bearer sk-test');
      expect(seen.body.model).toBe('judge-1');
      expect(seen.body.temperature).toBe(0);
    }
    // Both orders of pair 1: the policy's answer first, then second.
    const q1 = s.seen.filter((x) => x.body.messages[0].content.includes('q1 win')).map((x) => responses(x.body.messages[0].content));
    expect(q1).toEqual([
      { query: 'q1 win', a: 'a good answer', b: 'a poor answer' },
      { query: 'q1 win', a: 'a poor answer', b: 'a good answer' },
    ]);
    expect(r.choices[0]).toEqual(['A', 'B']);
    expect(r.choices[3]).toEqual([undefined, undefined]);

    // A second run with a fresh client and cache object: no HTTP request at all.
    const client2 = new JudgeClient({ url: `${s.url}/chat/completions`, model: 'judge-1', sleep: async () => {} });
    const r2 = await judgePairs(PAIRS, { client: client2, cache: await VerdictCache.open(VerdictCache.fileIn(cacheDir)) });
    expect(s.seen).toHaveLength(14);
    expect(client2.requests).toBe(0);
    expect(r2.outcomes).toEqual(r.outcomes);
    expect(r2.cached).toBe(12);
    // Another judge model is another cache key.
    const client3 = new JudgeClient({ url: s.url, model: 'judge-2', sleep: async () => {} });
    await judgePairs(PAIRS.slice(0, 1), { client: client3, cache: await VerdictCache.open(VerdictCache.fileIn(cacheDir)) });
    expect(client3.requests).toBe(2);
    expect(s.seen[14].auth).toBeUndefined();
  });

  it('an interrupted run resumes and asks only the missing questions', async () => {
    const pairs: JudgePair[] = Array.from({ length: 5 }, (_, i) => ({ query: `q${i}`, policy: `good ${i}`, baseline: `bad ${i}` }));
    const cacheDir = tempDir('dpo-ts-judge-');
    const file = VerdictCache.fileIn(cacheDir);
    // Answers 4 requests, then drops every connection until it is repaired.
    let repaired = false;
    const server = await stub((content, seen) => (!repaired && seen.length >= 4 ? { drop: true } : sensibleJudge(content, seen)));
    const c1 = new JudgeClient({ url: server.url, model: 'j', maxAttempts: 3, sleep: async () => {} });
    await expect(judgePairs(pairs, { client: c1, cache: await VerdictCache.open(file), concurrency: 1 })).rejects.toThrow(/no answer after 3 attempts.*network error/);
    expect(server.seen).toHaveLength(4 + 3);
    expect(readFileSync(file, 'utf8').trim().split('\n')).toHaveLength(4);

    repaired = true;
    const c2 = new JudgeClient({ url: server.url, model: 'j', sleep: async () => {} });
    const r = await judgePairs(pairs, { client: c2, cache: await VerdictCache.open(file), concurrency: 3 });
    expect(server.seen).toHaveLength(7 + 6);
    expect(r.cached).toBe(4);
    expect(r.asked).toBe(6);
    expect(r.counts.wins).toBe(5);
    // Nothing asked twice across the two runs.
    const asked = [...server.seen.slice(0, 4), ...server.seen.slice(7)].map((x) => x.body.messages[0].content);
    expect(new Set(asked).size).toBe(10);
  });

  it('a stop request asks no new question: JudgeStopped says how many were answered, and they stay cached', async () => {
    const pairs: JudgePair[] = Array.from({ length: 5 }, (_, i) => ({ query: `q${i}`, policy: `good ${i}`, baseline: `bad ${i}` }));
    const file = VerdictCache.fileIn(tempDir('dpo-ts-judge-'));
    const server = await stub(sensibleJudge);
    const c = new JudgeClient({ url: server.url, model: 'j', sleep: async () => {} });
    const err = await judgePairs(pairs, { client: c, cache: await VerdictCache.open(file), concurrency: 1, stopRequested: () => server.seen.length >= 3 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(JudgeStopped);
    expect(err).toMatchObject({ answered: 3, total: 10 });
    expect(server.seen).toHaveLength(3);
    expect(readFileSync(file, 'utf8').trim().split('\n')).toHaveLength(3);
  });

  it('fails at once on a 401 and on a cut cache line keeps reading', async () => {
    const s = await stub(() => ({ status: 401 }));
    const c = new JudgeClient({ url: s.url, model: 'j', sleep: async () => {} });
    await expect(c.ask('hello')).rejects.toThrow(/HTTP 401: .*stub error/);
    expect(s.seen).toHaveLength(1);

    const dir = tempDir('dpo-ts-judge-');
    const file = join(dir, 'v.jsonl');
    const cache = await VerdictCache.open(file);
    await cache.put('k1', 'j', { choice: 'A', answer: 'More helpful: A' });
    const { appendFileSync } = await import('node:fs');
    appendFileSync(file, '{"key":"k2","cho');
    const again = await VerdictCache.open(file);
    expect(again.size).toBe(1);
    await again.put('k3', 'j', { choice: undefined, answer: 'nope' });
    const third = await VerdictCache.open(file);
    expect(third.get('k1')?.choice).toBe('A');
    expect(third.get('k3')).toEqual({ choice: undefined, answer: 'nope' });
  });

  it('never caches a reply without answer text, keys the cache by endpoint, and a fixed endpoint answers', async () => {
    const cacheDir = tempDir('dpo-ts-judge-');
    const file = VerdictCache.fileIn(cacheDir);
    const pair: JudgePair[] = [{ query: 'q', policy: 'a good answer', baseline: 'a poor answer' }];
    // A broken endpoint: 200 with a JSON body that holds no choices.
    const broken = await stub(() => ({ raw: '{"id":"x","object":"chat.completion"}' }));
    const c1 = new JudgeClient({ url: broken.url, model: 'judge-1', maxAttempts: 2, sleep: async () => {} });
    await expect(judgePairs(pair, { client: c1, cache: await VerdictCache.open(file), concurrency: 1 })).rejects.toThrow(/no answer after 2 attempts.*without answer text/);
    expect(broken.seen).toHaveLength(2);
    expect((await VerdictCache.open(file)).size).toBe(0);
    // The same model name behind a fixed endpoint is asked (nothing stale was cached) ...
    const fixed = await stub(sensibleJudge);
    const c2 = new JudgeClient({ url: fixed.url, model: 'judge-1', sleep: async () => {} });
    const r = await judgePairs(pair, { client: c2, cache: await VerdictCache.open(file) });
    expect(r.outcomes).toEqual(['win']);
    expect(c2.requests).toBe(2);
    // ... and its verdicts are not reused for another endpoint serving a model of the same name.
    const other = await stub(sensibleJudge);
    const c3 = new JudgeClient({ url: other.url, model: 'judge-1', sleep: async () => {} });
    const r3 = await judgePairs(pair, { client: c3, cache: await VerdictCache.open(file) });
    expect(r3.cached).toBe(0);
    expect(c3.requests).toBe(2);
    const c4 = new JudgeClient({ url: `${fixed.url}/chat/completions/`, model: 'judge-1', sleep: async () => {} });
    expect((await judgePairs(pair, { client: c4, cache: await VerdictCache.open(file) })).cached).toBe(2);
    expect(c4.requests).toBe(0);
  });

  it('does not retry what cannot succeed: used-up quota, an error body, an unknown host; times out slow requests', async () => {
    const quota = await stub(() => ({ status: 429, raw: '{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}}' }));
    const cq = new JudgeClient({ url: quota.url, model: 'j', sleep: async () => {} });
    await expect(cq.ask('hello')).rejects.toThrow(/HTTP 429, quota used up/);
    expect(quota.seen).toHaveLength(1);

    const errorBody = await stub(() => ({ raw: '{"error":{"message":"model not loaded","code":"model_not_found"}}' }));
    const ce = new JudgeClient({ url: errorBody.url, model: 'j', sleep: async () => {} });
    await expect(ce.ask('hello')).rejects.toThrow(/HTTP 200 with an error.*model not loaded/);
    expect(errorBody.seen).toHaveLength(1);

    const notImplemented = await stub(() => ({ status: 501 }));
    const cn = new JudgeClient({ url: notImplemented.url, model: 'j', sleep: async () => {} });
    await expect(cn.ask('hello')).rejects.toThrow(/HTTP 501/);
    expect(notImplemented.seen).toHaveLength(1);

    let dnsCalls = 0;
    const dns = (async () => {
      dnsCalls++;
      throw Object.assign(new TypeError('fetch failed'), { cause: { code: 'ENOTFOUND', message: 'getaddrinfo ENOTFOUND judge.invalid' } });
    }) as typeof fetch;
    const cd = new JudgeClient({ url: 'http://judge.invalid/v1', model: 'j', fetch: dns, sleep: async () => {} });
    await expect(cd.ask('hello')).rejects.toThrow(/judge http:\/\/judge.invalid\/v1\/chat\/completions: fetch failed: ENOTFOUND/);
    expect(dnsCalls).toBe(1);

    const slow = await stub(() => ({ hang: true }));
    const cs = new JudgeClient({ url: slow.url, model: 'j', timeoutMs: 100, maxAttempts: 2, sleep: async () => {} });
    await expect(cs.ask('hello')).rejects.toThrow(/no answer after 2 attempts.*timed out after 100 ms/);
    expect(slow.seen).toHaveLength(2);
    expect(() => new JudgeClient({ url: slow.url, model: 'j', timeoutMs: 0 })).toThrow(/timeoutMs/);
  });
});
