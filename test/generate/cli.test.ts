/**
 * Text-level generation and `dpo generate` on a tiny random GPT-2 with GPT-2's real tokenizer:
 * output file contents and order, agreement with the library, stop strings, chat prompts, and
 * prompt-file validation with file:line errors.
 */
import { cpSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../cli/run-cli.js';
import { generate } from '../../src/generate/generate.js';
import { Generator } from '../../src/generate/generator.js';
import { loadPretrained, type Pretrained } from '../../src/models/pretrained.js';
import type { HfTokenizer } from '../../src/io/tokenizer.js';
import { makeTinyGpt2, tempDir } from '../train/helpers.js';

const run = runCli;

const PROMPTS = ['The movie was', 'Hello', 'Once upon a time, in a land far away, there lived'];

describe('text generation and dpo generate', () => {
  let dir: string;
  let modelDir: string;
  let pre: Pretrained;
  let tokenizer: HfTokenizer;
  let gen: Generator;

  beforeAll(async () => {
    dir = tempDir('dpo-ts-generate-');
    modelDir = await makeTinyGpt2(join(dir, 'model'), { embd: 16, layers: 1, seed: 3 });
    pre = await loadPretrained(modelDir);
    tokenizer = pre.tokenizer as HfTokenizer;
    gen = await Generator.create(pre.model, { runtime: { threads: 1 } });
  });
  afterAll(async () => {
    await gen.release();
  });

  it('generate() and Generator.generateText agree; greedy batched == alone; stop strings cut the text', async () => {
    const o = { maxNewTokens: 8, batchSize: 3 };
    const a = await generate(pre, PROMPTS, { ...o, runtime: { threads: 1 } });
    const b = await gen.generateText(pre.weights, tokenizer, PROMPTS, { ...o, batchSize: 1, generationConfig: pre.generationConfig });
    expect(a.completions).toEqual(b.completions);
    expect(a.tokenIds).toEqual(b.tokenIds);
    expect(a.completions.every((c) => c.length === 1 && c[0].length > 0)).toBe(true);
    expect(a.tokenIds.map((t) => tokenizer.decode(t[0]))).toEqual(a.completions.map((c) => c[0]));
    expect(a.promptTokenIds[1]).toEqual(tokenizer.encode('Hello'));
    expect(a.stats.tokens).toBe(24);
    expect(a.stats.tokensPerSecond).toBeGreaterThan(0);

    // A stop string taken from the greedy text: the completion ends right before it.
    const text = a.completions[2][0];
    const i = [...text].findIndex((ch, k) => k >= 2 && /[A-Za-z]/.test(ch));
    expect(i).toBeGreaterThan(0);
    const stop = text[i];
    const s = await gen.generateText(pre.weights, tokenizer, PROMPTS, { ...o, stop: [stop] });
    expect(s.completions[2][0]).toBe(text.slice(0, text.indexOf(stop)));
    expect(s.finishReasons[2][0]).toBe('stop');
    s.completions.forEach(([c], k) => expect(c).toBe(a.completions[k][0].includes(stop) ? a.completions[k][0].slice(0, a.completions[k][0].indexOf(stop)) : a.completions[k][0]));
  });

  it('stops at the tokenizer EOS and leaves it out of the text', async () => {
    const greedy = await gen.generateText(pre.weights, tokenizer, PROMPTS, { maxNewTokens: 6 });
    // Make the first greedy token of prompt 0 the EOS.
    const eos = greedy.tokenIds[0][0][0];
    const r = await gen.generateText(pre.weights, tokenizer, PROMPTS, { maxNewTokens: 6, eosTokenIds: [eos] });
    expect(r.finishReasons[0][0]).toBe('eos');
    expect(r.tokenIds[0][0]).toEqual([eos]);
    expect(r.completions[0][0]).toBe('');
  });

  it('writes one line per prompt in input order, as the library samples', async () => {
    const prompts = join(dir, 'prompts.jsonl');
    writeFileSync(prompts, `${PROMPTS.map((p) => JSON.stringify({ prompt: p, id: p.length })).join('\n')}\n`);
    const out = join(dir, 'out', 'samples.jsonl');
    const r = await run(['generate', '--model', modelDir, '--prompts', prompts, '--output', out, '--num-samples', '2', '--max-new-tokens', '5', '--seed', '7', '--batch-size', '3', '--threads', '1']);
    expect(r.stderr).toMatch(/tokens\/s/);
    expect(r.code).toBe(0);
    const rows = readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { prompt: string; completions: string[]; finish_reasons: string[] });
    expect(rows.map((x) => x.prompt)).toEqual(PROMPTS);
    expect(rows.every((x) => x.completions.length === 2)).toBe(true);
    const summary = JSON.parse(r.stdout) as { prompts: number; tokens: number; tokensPerSecond: number };
    expect(summary.prompts).toBe(3);
    expect(summary.tokens).toBeGreaterThan(0);
    const lib = await gen.generateText(pre.weights, tokenizer, PROMPTS, { maxNewTokens: 5, numSamples: 2, seed: 7, doSample: true, temperature: 1, topK: 50, topP: 1 });
    expect(rows.map((x) => x.completions)).toEqual(lib.completions);
    expect(rows.map((x) => x.finish_reasons)).toEqual(lib.finishReasons); // what dpo label --completions shows
    expect(lib.completions[0][0]).not.toBe(lib.completions[0][1]);

    // Greedy with a stop string, through the flags.
    const out2 = join(dir, 'greedy.jsonl');
    const g = await run(['generate', '--model', modelDir, '--prompts', prompts, '--output', out2, '--greedy', '--max-new-tokens', '8', '--stop', 'zzqq', '--threads', '1']);
    expect(g.code).toBe(0);
    const greedyLib = await gen.generateText(pre.weights, tokenizer, PROMPTS, { maxNewTokens: 8 });
    expect(readFileSync(out2, 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { completions: string[] }).completions)).toEqual(greedyLib.completions);
  });

  it('renders conversational prompts with the chat template and its generation prompt', async () => {
    const chatDir = join(dir, 'chat-model');
    cpSync(modelDir, chatDir, { recursive: true });
    const cfgPath = join(chatDir, 'tokenizer_config.json');
    const cfg = JSON.parse(readFileSync(cfgPath, 'utf8')) as Record<string, unknown>;
    cfg.chat_template = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}";
    writeFileSync(cfgPath, JSON.stringify(cfg));
    const prompts = join(dir, 'chat.jsonl');
    const messages = [{ role: 'user', content: 'Hi there' }];
    writeFileSync(prompts, `${JSON.stringify({ messages })}\n${JSON.stringify({ prompt: messages })}\n${JSON.stringify({ prompt: 'user: Hi there\nassistant:' })}\n`);
    const out = join(dir, 'chat-out.jsonl');
    const r = await run(['generate', '--model', chatDir, '--prompts', prompts, '--output', out, '--greedy', '--max-new-tokens', '4', '--threads', '1']);
    expect(r.code, r.stderr).toBe(0);
    const rows = readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { prompt: unknown; completions: string[] });
    expect(rows[0].prompt).toEqual(messages);
    expect(rows[1].prompt).toEqual(messages);
    expect(rows[0].completions).toEqual(rows[2].completions);
    expect(rows[1].completions).toEqual(rows[2].completions);
  });

  it('rejects malformed prompt rows with file:line reasons and writes nothing', async () => {
    const prompts = join(dir, 'bad.jsonl');
    writeFileSync(
      prompts,
      [
        JSON.stringify({ prompt: 'fine' }),
        '{not json',
        JSON.stringify({ prompt: 5 }),
        JSON.stringify({ text: 'no prompt field' }),
        JSON.stringify({ messages: [{ role: 'user', content: 'needs a chat template' }] }),
        JSON.stringify({ prompt: [{ role: 'user', content: 'x' }, { role: 'assistant', content: 'y' }] }),
      ].join('\n'),
    );
    const out = join(dir, 'never.jsonl');
    const r = await run(['generate', '--model', modelDir, '--prompts', prompts, '--output', out, '--max-new-tokens', '2']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^dpo: 5 malformed data rows/);
    for (const line of [2, 3, 4, 5, 6]) expect(r.stderr).toContain(`${prompts}:${line}:`);
    expect(r.stderr).toMatch(/bad\.jsonl:3: field 'prompt' must be a string or a list of messages, got number/);
    expect(r.stderr).toMatch(/bad\.jsonl:5: .*chat template/);
    expect(r.stderr).toMatch(/bad\.jsonl:6: .*assistant/);
    expect(existsSync(out)).toBe(false);

    // Skipping them generates for the good row only.
    const s = await run(['generate', '--model', modelDir, '--prompts', prompts, '--output', out, '--max-new-tokens', '2', '--on-bad-row', 'skip', '--threads', '1']);
    expect(s.code, s.stderr).toBe(0);
    expect(readFileSync(out, 'utf8').trim().split('\n')).toHaveLength(1);

    const flags = await run(['generate', '--model', modelDir, '--prompts', prompts, '--output', out, '--top-p', '1.5']);
    expect(flags.code).toBe(1);
    expect(flags.stderr).toMatch(/--top-p/);
  });
});
