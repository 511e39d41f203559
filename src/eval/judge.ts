/**
 * Pairwise judging with an LLM behind any OpenAI-compatible chat-completions endpoint, as the DPO
 * paper judges win rates with GPT-4 (Appendix C prompts).
 *
 * - Request: POST {url}/chat/completions (a URL already ending in /chat/completions is used as
 *   is) with `{model, messages: [{role: 'user', content}], temperature: 0}` and, when an API key
 *   is given, `Authorization: Bearer <key>`.
 * - Retries: network errors, timeouts, HTTP 429 and 5xx, and 200 answers that are not JSON or
 *   carry no answer text (no choices[0].message.content) are retried up to `maxAttempts` times
 *   in all, waiting Retry-After when the server sends one (seconds or an HTTP date, capped at
 *   `maxDelayMs`) and otherwise an exponential backoff (baseDelayMs · 2^(attempt-1), capped, with
 *   jitter). Errors that cannot succeed on a retry fail at once: other HTTP errors (400, 401,
 *   404...), 501/505, a 429 whose error code says the quota is used up (insufficient_quota),
 *   a 200 whose body is an `error` object, an unknown host name and TLS certificate errors.
 *   When the attempts run out the evaluation stops with a DpoError; verdicts obtained so far are
 *   already in the cache, so running again resumes.
 * - Verdicts: the answer's "More helpful:" / "Preferred:" line (or, failing that, a last line that
 *   is only "A" or "B"); anything else is `malformed`, never guessed.
 * - Both orders: every pair is asked twice, policy as A then policy as B. Same choice in both
 *   orders = win or loss; a split (the judge picked the same position twice) = tie; a malformed
 *   answer in either order makes the comparison `malformed` (one order alone would not cancel the
 *   position bias). Identical completions are a tie without asking.
 * - Cache: one JSON line per answered request in `<cacheDir>/judge-verdicts.jsonl`, keyed by
 *   SHA-256 of the endpoint URL, the judge model and the exact request text (comparison prompt,
 *   query and both completions, in order), so another endpoint serving the same model name asks
 *   again. Only the judge's own answers are cached: text that names no choice is a malformed
 *   verdict and is cached (at temperature 0 the judge would repeat it); a reply without answer
 *   text is an error, never cached. Delete the file to ask again.
 */
import { createHash } from 'node:crypto';
import { appendFile, mkdir, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { DpoError } from '../errors.js';

/** Comparison prompt styles of the DPO paper's Appendix C. */
export type JudgeTemplateName = 'dialogue' | 'summarization';

export const JUDGE_TEMPLATES: readonly JudgeTemplateName[] = ['dialogue', 'summarization'];

/** The comparison prompt for one order: `a` is shown as response A, `b` as response B. */
export function renderJudgePrompt(template: JudgeTemplateName, query: string, a: string, b: string): string {
  if (template === 'summarization') {
    return [
      'Which of the following summaries does a better job of summarizing the most important points in the given forum post, without including unimportant or irrelevant details? A good summary is both precise and concise.',
      '',
      'Post:',
      query,
      '',
      'Summary A:',
      a,
      '',
      'Summary B:',
      b,
      '',
      'FIRST provide a one-sentence comparison of the two summaries, explaining which you prefer and why. SECOND, on a new line, state only "A" or "B" to indicate your choice. Your response should use the format:',
      'Comparison: <one-sentence comparison and explanation>',
      'Preferred: <"A" or "B">',
    ].join('\n');
  }
  return [
    'For the following query to a chatbot, which response is more helpful?',
    '',
    `Query: ${query}`,
    '',
    'Response A:',
    a,
    '',
    'Response B:',
    b,
    '',
    'FIRST provide a one-sentence comparison of the two responses and explain which you feel is more helpful. SECOND, on a new line, state only "A" or "B" to indicate which response is more helpful. Your response should use the format:',
    'Comparison: <one-sentence comparison and explanation>',
    'More helpful: <"A" or "B">',
  ].join('\n');
}

const LABEL = /^[\s*_#>-]*(more\s+helpful|preferred|preference|choice|answer|verdict)[\s*_]*:(.*)$/i;

/** `s` without surrounding whitespace, quotes, brackets and markdown emphasis. */
function unquote(s: string): string {
  return s
    .trim()
    .replace(/^[\s*_"'`“”‘’<([]+/u, '')
    .replace(/[\s*_"'`“”‘’>)\].]+$/u, '');
}

function bareChoice(s: string): 'A' | 'B' | undefined {
  const v = unquote(s).replace(/^(response|summary|option)\s+/i, '');
  return v === 'A' || v === 'B' ? v : undefined;
}

/** The value of the answer's last "More helpful:" / "Preferred:" line, else its last line (undefined when empty). */
function decisiveText(text: string): string | undefined {
  const lines = text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l.length > 0);
  for (let i = lines.length - 1; i >= 0; i--) {
    const m = LABEL.exec(lines[i]);
    if (m) return m[2];
  }
  return lines.length > 0 ? lines[lines.length - 1] : undefined;
}

/**
 * The position the judge chose: 'A' or 'B', or undefined when the answer does not say so
 * unambiguously. The last "More helpful:" / "Preferred:" line decides (its value must be exactly
 * A or B, quotes and markdown aside); without such a line, a last line that is only A or B.
 */
export function parseJudgeAnswer(text: string): 'A' | 'B' | undefined {
  const v = decisiveText(text);
  return v === undefined ? undefined : bareChoice(v);
}

/**
 * True when the answer's decisive line declares a tie ("More helpful: Tie", "Preferred: neither",
 * "equal", "both", "same") instead of A or B. The paper's prompts ask for A or B only, so
 * {@link parseJudgeAnswer} counts such an answer as malformed; studies of the judge itself (judge
 * agreement) report it as a tie.
 */
export function parseJudgeTie(text: string): boolean {
  const v = decisiveText(text);
  return v !== undefined && TIE.test(unquote(v));
}

const TIE = /^(tie|a tie|it'?s a tie|equal|equally (good|helpful)|neither|both|same|none)$/i;

/** What one judge request decided, as cached. */
export interface JudgeAnswer {
  /** The position chosen, or undefined for a malformed answer. */
  choice: 'A' | 'B' | undefined;
  /** The judge's raw answer text. */
  answer: string;
}

export interface JudgeClientOptions {
  /** Base URL (e.g. https://api.openai.com/v1) or the full .../chat/completions URL. */
  url: string;
  model: string;
  /** Sent as `Authorization: Bearer <apiKey>` when set. */
  apiKey?: string;
  /** Requests per question at most, first try included (default 6). */
  maxAttempts?: number;
  /** First backoff delay (default 1000 ms), doubled at each retry. */
  baseDelayMs?: number;
  /** Longest wait between tries, Retry-After included (default 60000 ms). */
  maxDelayMs?: number;
  /** Per-request timeout (default 120000 ms). */
  timeoutMs?: number;
  /** Extra fields of the request body (e.g. max_tokens). */
  extraBody?: Record<string, unknown>;
  /** Replaceable for tests. */
  fetch?: typeof fetch;
  sleep?: (ms: number) => Promise<void>;
  /** Called before each retry with the reason and the wait. */
  onRetry?: (info: { attempt: number; delayMs: number; reason: string }) => void;
}

/** The chat-completions URL for a base URL or a full one. */
export function chatCompletionsUrl(url: string): string {
  const u = url.trim().replace(/\/+$/, '');
  if (!/^https?:\/\//i.test(u)) throw new DpoError(`judge URL must start with http:// or https://, got '${url}'`);
  return u.endsWith('/chat/completions') ? u : `${u}/chat/completions`;
}

/** Milliseconds a Retry-After header asks for (seconds or an HTTP date), or undefined. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (value === null) return undefined;
  const v = value.trim();
  if (/^\d+(\.\d+)?$/.test(v)) return Math.round(Number(v) * 1000);
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : Math.max(0, t - now);
}

const defaultSleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

class RetryableError extends Error {
  constructor(
    message: string,
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

/** A chat-completions client for one judge model, with retries. */
export class JudgeClient {
  readonly url: string;
  readonly model: string;
  /** HTTP requests sent (retries included). */
  requests = 0;
  private readonly o: Required<Pick<JudgeClientOptions, 'maxAttempts' | 'baseDelayMs' | 'maxDelayMs' | 'timeoutMs'>> & JudgeClientOptions;

  constructor(options: JudgeClientOptions) {
    if (!options.model) throw new DpoError('judge: a model name is needed (--judge-model)');
    this.url = chatCompletionsUrl(options.url);
    this.model = options.model;
    const defined = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as JudgeClientOptions;
    this.o = { maxAttempts: 6, baseDelayMs: 1000, maxDelayMs: 60_000, timeoutMs: 120_000, ...defined };
    if (!Number.isInteger(this.o.maxAttempts) || this.o.maxAttempts < 1) throw new DpoError(`judge: maxAttempts must be a positive integer, got ${this.o.maxAttempts}`);
    if (!(this.o.timeoutMs > 0) || !Number.isFinite(this.o.timeoutMs)) throw new DpoError(`judge: timeoutMs must be a positive number, got ${this.o.timeoutMs}`);
  }

  /** Sends `content` as one user message and returns the parsed answer. */
  async ask(content: string): Promise<JudgeAnswer> {
    const sleep = this.o.sleep ?? defaultSleep;
    let last = '';
    for (let attempt = 1; attempt <= this.o.maxAttempts; attempt++) {
      try {
        const answer = await this.once(content);
        return { choice: parseJudgeAnswer(answer), answer };
      } catch (e) {
        if (!(e instanceof RetryableError)) throw e;
        last = e.message;
        if (attempt === this.o.maxAttempts) break;
        const backoff = Math.min(this.o.maxDelayMs, this.o.baseDelayMs * 2 ** (attempt - 1));
        const delayMs = e.retryAfterMs !== undefined ? Math.min(this.o.maxDelayMs, e.retryAfterMs) : Math.round(backoff * (0.5 + Math.random() * 0.5));
        this.o.onRetry?.({ attempt, delayMs, reason: e.message });
        await sleep(delayMs);
      }
    }
    throw new DpoError(`judge ${this.url}: no answer after ${this.o.maxAttempts} attempts (last: ${last}); verdicts so far are cached, run again to resume`);
  }

  private async once(content: string): Promise<string> {
    const f = this.o.fetch ?? fetch;
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (this.o.apiKey) headers.authorization = `Bearer ${this.o.apiKey}`;
    const body = JSON.stringify({ model: this.model, messages: [{ role: 'user', content }], temperature: 0, ...this.o.extraBody });
    this.requests++;
    let res: Response;
    let text: string;
    try {
      res = await f(this.url, { method: 'POST', headers, body, signal: AbortSignal.timeout(this.o.timeoutMs) });
      text = await res.text();
    } catch (e) {
      const err = e as Error & { cause?: { code?: string; message?: string } };
      if (err.name === 'TimeoutError') throw new RetryableError(`network error: timed out after ${this.o.timeoutMs} ms (--judge-timeout)`);
      const code = err.cause?.code;
      const why = [err.message, code ?? err.cause?.message].filter(Boolean).join(': ');
      if (code !== undefined && HOPELESS_NETWORK_CODES.test(code)) throw new DpoError(`judge ${this.url}: ${why}`);
      throw new RetryableError(`network error: ${why}`);
    }
    const json = parseJson(text);
    const errorCode = apiErrorCode(json);
    if (res.status === 429 && errorCode === 'insufficient_quota') throw new DpoError(`judge ${this.url}: HTTP 429, quota used up${snippet(text)}`);
    if (res.status === 429 || (res.status >= 500 && res.status !== 501 && res.status !== 505)) {
      throw new RetryableError(`HTTP ${res.status}${snippet(text)}`, parseRetryAfter(res.headers.get('retry-after')));
    }
    if (!res.ok) throw new DpoError(`judge ${this.url}: HTTP ${res.status}${snippet(text)}`);
    if (json === undefined) throw new RetryableError(`HTTP ${res.status} with a body that is not JSON${snippet(text)}`);
    if (errorCode !== undefined) throw new DpoError(`judge ${this.url}: HTTP ${res.status} with an error${snippet(text)}`);
    const message = (json as { choices?: { message?: { content?: unknown; refusal?: unknown } }[] } | null)?.choices?.[0]?.message;
    // A refusal is the judge's answer (a malformed verdict); no text at all is a broken reply, retried and never cached.
    const answer = typeof message?.content === 'string' && message.content.trim() ? message.content : typeof message?.refusal === 'string' ? message.refusal : undefined;
    if (answer === undefined) throw new RetryableError(`HTTP ${res.status} without answer text (choices[0].message.content)${snippet(text)}`);
    return answer;
  }
}

/** Causes of a failed request that a retry cannot fix: an unknown host, a bad URL, TLS certificate problems. */
const HOPELESS_NETWORK_CODES = /^(ENOTFOUND|ERR_INVALID_URL|ERR_TLS_CERT_ALTNAME_INVALID|CERT_\w+|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_\w+|ERR_SSL_\w+)$/;

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** The `error` object's code (or type, or 'error') of an OpenAI-style error body; undefined when there is none. */
function apiErrorCode(json: unknown): string | undefined {
  if (typeof json !== 'object' || json === null || !('error' in json)) return undefined;
  const err = (json as { error: unknown }).error;
  if (err === null || err === undefined) return undefined;
  if (typeof err !== 'object') return 'error';
  const e = err as { code?: unknown; type?: unknown };
  return typeof e.code === 'string' ? e.code : typeof e.type === 'string' ? e.type : 'error';
}

function snippet(text: string): string {
  const t = text.replace(/\s+/g, ' ').trim();
  return t ? `: ${t.length > 200 ? `${t.slice(0, 200)}...` : t}` : '';
}

/** The cache key of one request: endpoint URL + judge model + exact request text. */
export function verdictKey(url: string, model: string, content: string): string {
  return createHash('sha256').update(JSON.stringify([chatCompletionsUrl(url), model, content])).digest('hex');
}

/** An append-only JSONL file of judge answers (see the module comment). */
export class VerdictCache {
  private constructor(
    readonly file: string,
    private readonly entries: Map<string, JudgeAnswer>,
  ) {}

  static fileIn(cacheDir: string): string {
    return join(cacheDir, 'judge-verdicts.jsonl');
  }

  /** Opens (or starts) the cache file; unreadable lines (an interrupted write) are ignored. */
  static async open(file: string): Promise<VerdictCache> {
    const entries = new Map<string, JudgeAnswer>();
    let text = '';
    try {
      text = await readFile(file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new DpoError(`judge cache ${file}: ${(e as Error).message}`);
    }
    for (const line of text.split('\n')) {
      if (!line.trim()) continue;
      try {
        const v = JSON.parse(line) as { key?: unknown; choice?: unknown; answer?: unknown };
        if (typeof v.key !== 'string' || typeof v.answer !== 'string') continue;
        entries.set(v.key, { choice: v.choice === 'A' || v.choice === 'B' ? v.choice : undefined, answer: v.answer });
      } catch {
        // a line cut short by an interruption
      }
    }
    await mkdir(dirname(file), { recursive: true });
    // Start appends on a fresh line when the last write was cut short.
    if (text.length > 0 && !text.endsWith('\n')) await appendFile(file, '\n');
    return new VerdictCache(file, entries);
  }

  get size(): number {
    return this.entries.size;
  }

  get(key: string): JudgeAnswer | undefined {
    return this.entries.get(key);
  }

  async put(key: string, model: string, value: JudgeAnswer): Promise<void> {
    this.entries.set(key, value);
    try {
      await appendFile(this.file, `${JSON.stringify({ key, model, choice: value.choice ?? null, answer: value.answer })}\n`);
    } catch (e) {
      throw new DpoError(`judge cache ${this.file}: ${(e as Error).message}`);
    }
  }
}

/** One comparison's outcome for the policy. */
export type Outcome = 'win' | 'tie' | 'loss' | 'malformed';

/**
 * The outcome from both orders: `policyFirst` is the choice with the policy's completion as A,
 * `policySecond` with it as B.
 */
export function combineOrders(policyFirst: 'A' | 'B' | undefined, policySecond: 'A' | 'B' | undefined): Outcome {
  if (policyFirst === undefined || policySecond === undefined) return 'malformed';
  const a = policyFirst === 'A';
  const b = policySecond === 'B';
  return a && b ? 'win' : !a && !b ? 'loss' : 'tie';
}

export interface WinRateCounts {
  /** Comparisons made (malformed ones included). */
  comparisons: number;
  wins: number;
  ties: number;
  losses: number;
  malformed: number;
  /** (wins + ties / 2) / (wins + ties + losses); null when no comparison was judged. */
  win_rate: number | null;
}

export function countOutcomes(outcomes: readonly Outcome[]): WinRateCounts {
  const c = { comparisons: outcomes.length, wins: 0, ties: 0, losses: 0, malformed: 0 };
  for (const o of outcomes) {
    if (o === 'win') c.wins++;
    else if (o === 'tie') c.ties++;
    else if (o === 'loss') c.losses++;
    else c.malformed++;
  }
  const judged = c.wins + c.ties + c.losses;
  return { ...c, win_rate: judged > 0 ? (c.wins + c.ties / 2) / judged : null };
}

/** One comparison to judge. */
export interface JudgePair {
  /** The query / post as the judge should read it. */
  query: string;
  policy: string;
  baseline: string;
}

export interface JudgePairsOptions {
  client: JudgeClient;
  cache?: VerdictCache;
  template?: JudgeTemplateName;
  /** Requests in flight at once (default 4). */
  concurrency?: number;
  onProgress?: (done: number, total: number) => void;
  /** True stops asking new questions (those in flight finish and are cached); then JudgeStopped is thrown. */
  stopRequested?: () => boolean;
}

/** Thrown by {@link judgePairs} when `stopRequested` stopped it: `answered` of `total` questions have verdicts (cached). */
export class JudgeStopped extends DpoError {
  constructor(
    readonly answered: number,
    readonly total: number,
  ) {
    super(`judging stopped after ${answered} of ${total} questions`);
    this.name = 'JudgeStopped';
  }
}

export interface JudgePairsResult {
  outcomes: Outcome[];
  /** Per pair: the choice with the policy as A, and with the policy as B (undefined = malformed). */
  choices: ['A' | 'B' | undefined, 'A' | 'B' | undefined][];
  /** Per pair: the judge's raw answer text in each order (undefined where nothing was asked). */
  answers: [string | undefined, string | undefined][];
  counts: WinRateCounts;
  /** Questions answered from the cache. */
  cached: number;
  /** Questions sent to the judge (each may have taken several HTTP requests). */
  asked: number;
  /** Share of valid answers that chose position A (0.5 = no position bias); null without any. */
  first_position_rate: number | null;
}

/** Judges every pair in both orders (see the module comment), resuming from `cache`. */
export async function judgePairs(pairs: readonly JudgePair[], options: JudgePairsOptions): Promise<JudgePairsResult> {
  const template = options.template ?? 'dialogue';
  const { client, cache } = options;
  const concurrency = options.concurrency ?? 4;
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new DpoError(`judge concurrency must be a positive integer, got ${concurrency}`);
  // Every question: pair index, order (0: policy as A, 1: policy as B).
  const questions: { pair: number; order: 0 | 1; content: string; key: string }[] = [];
  for (let i = 0; i < pairs.length; i++) {
    const p = pairs[i];
    if (p.policy.trim() === p.baseline.trim()) continue;
    const first = renderJudgePrompt(template, p.query.trim(), p.policy.trim(), p.baseline.trim());
    const second = renderJudgePrompt(template, p.query.trim(), p.baseline.trim(), p.policy.trim());
    questions.push({ pair: i, order: 0, content: first, key: verdictKey(client.url, client.model, first) });
    questions.push({ pair: i, order: 1, content: second, key: verdictKey(client.url, client.model, second) });
  }
  const answers = new Map<string, JudgeAnswer>();
  let cached = 0;
  const todo: typeof questions = [];
  const queued = new Set<string>();
  for (const q of questions) {
    const hit = cache?.get(q.key);
    if (hit) {
      answers.set(q.key, hit);
      cached++;
    } else if (!queued.has(q.key)) {
      queued.add(q.key);
      todo.push(q);
    }
  }
  let done = questions.length - todo.length;
  options.onProgress?.(done, questions.length);
  let next = 0;
  let failed: unknown;
  const worker = async (): Promise<void> => {
    while (failed === undefined && next < todo.length && !options.stopRequested?.()) {
      const q = todo[next++];
      try {
        const a = await client.ask(q.content);
        answers.set(q.key, a);
        await cache?.put(q.key, client.model, a);
      } catch (e) {
        failed ??= e;
        return;
      }
      done++;
      options.onProgress?.(done, questions.length);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, todo.length) }, worker));
  if (failed !== undefined) throw failed;
  if (next < todo.length) throw new JudgeStopped(done, questions.length);

  const choices: JudgePairsResult['choices'] = pairs.map(() => [undefined, undefined]);
  const texts: JudgePairsResult['answers'] = pairs.map(() => [undefined, undefined]);
  for (const q of questions) {
    choices[q.pair][q.order] = answers.get(q.key)?.choice;
    texts[q.pair][q.order] = answers.get(q.key)?.answer;
  }
  const asked = new Set(questions.map((q) => q.pair));
  const outcomes = pairs.map((_, i): Outcome => (asked.has(i) ? combineOrders(choices[i][0], choices[i][1]) : 'tie'));
  let valid = 0;
  let firstPos = 0;
  for (const q of questions) {
    const c = answers.get(q.key)?.choice;
    if (c) {
      valid++;
      if (c === 'A') firstPos++;
    }
  }
  return { outcomes, choices, answers: texts, counts: countOutcomes(outcomes), cached, asked: todo.length, first_position_rate: valid > 0 ? firstPos / valid : null };
}
