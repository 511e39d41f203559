/** `dpo label --completions`: reading existing completions, its errors, and the CLI around it (no model). */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadCompletions } from '../../src/label/completions.js';
import { runLabel } from '../../src/label/run.js';
import { runCli } from '../cli/run-cli.js';

const dir = mkdtempSync(join(tmpdir(), 'dpo-label-completions-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, rows: unknown[]): string {
  const path = join(dir, name);
  writeFileSync(path, rows.map((r) => (typeof r === 'string' ? r : JSON.stringify(r))).join('\n') + '\n');
  return path;
}

const chat = [
  { role: 'system', content: 'Be brief.' },
  { role: 'user', content: 'Name a colour.' },
];

describe('loadCompletions', () => {
  it('reads dpo generate rows, conversations, assistant-list completions and finish reasons', async () => {
    const path = file('ok.jsonl', [
      { prompt: 'The movie was', completions: [' great', ' bad'] },
      { prompt: chat, completions: [[{ role: 'assistant', content: 'Red.' }], 'Blue, or maybe'], finish_reasons: ['eos', 'length'], rewards: [1, 2] },
    ]);
    const loaded = await loadCompletions(path);
    expect(loaded.numCompletions).toBe(2);
    expect(loaded.prompts.map((p) => p.prompt)).toEqual(['The movie was', chat]);
    expect(loaded.prompts[1].text).toBe('system: Be brief.\nuser: Name a colour.'); // never template markup
    expect(loaded.completions).toEqual([{ texts: [' great', ' bad'] }, { texts: ['Red.', 'Blue, or maybe'], finishReasons: ['eos', 'length'] }]);
  });

  it("reads what dpo generate writes, with each completion's finish reason", async () => {
    const prompts = file('prompts.jsonl', [{ prompt: 'The movie was' }, { prompt: 'Our trip' }]);
    const samples = join(dir, 'generated.jsonl');
    const model = join(import.meta.dirname, '..', '..', 'assets', 'brown-gpt2');
    const gen = await runCli(['generate', '--model', model, '--prompts', prompts, '--output', samples, '--num-samples', '3', '--max-new-tokens', '4', '--threads', '1']);
    expect(gen.code).toBe(0);
    const loaded = await loadCompletions(samples);
    expect(loaded.numCompletions).toBe(3);
    expect(loaded.prompts.map((p) => p.prompt)).toEqual(['The movie was', 'Our trip']);
    for (const c of loaded.completions) {
      expect(c.texts).toHaveLength(3);
      expect(c.finishReasons).toHaveLength(3);
      for (const r of c.finishReasons ?? []) expect(['eos', 'length']).toContain(r);
    }
  });

  it('names file:line and what is wrong in one line', async () => {
    const cases: [unknown, string][] = [
      [{ prompt: 'p' }, "expected a 'prompt' and a 'completions' list, found 'prompt'"],
      [{ prompt: 'p', completions: [' only one'] }, "'completions' has 1; expected 2 to 9 (one key each)"],
      [{ prompt: 'p', completions: ' a string' }, "field 'completions' must be a list, got string"],
      [{ prompt: 'p', completions: [' a', 3] }, 'completions[1] must be a string or a one-message assistant list, got number'],
      [{ prompt: 7, completions: [' a', ' b'] }, "field 'prompt' must be a string or a list of messages, got number"],
      [{ prompt: [...chat, { role: 'assistant', content: 'x' }], completions: [' a', ' b'] }, 'prompt ends with an assistant message; the completions answer a user (or system) turn'],
      [{ prompt: 'p', completions: [' a', ' b'], finish_reasons: ['eos'] }, "field 'finish_reasons' must be a list of 2 (one per completion), got 1"],
      [{ prompt: 'p', completions: [' a', ' b'], finish_reasons: ['eos', 'max_tokens'] }, 'finish_reasons[1] must be "eos", "stop", "length" or null, got "max_tokens"'],
      ['{"prompt": "p", "completions": [', 'invalid JSON'],
    ];
    for (const [row, reason] of cases) {
      const path = file('bad.jsonl', [{ prompt: 'first', completions: [' a', ' b'] }, row]);
      const err = await loadCompletions(path).catch((e: Error) => e);
      expect(err).toBeInstanceOf(Error);
      expect((err as Error).message).toContain(`${path}:2: `);
      expect((err as Error).message).toContain(reason);
      expect((err as Error).message).not.toContain('\n');
    }
    const mixed = file('mixed.jsonl', [{ prompt: 'a', completions: [' a', ' b'] }, { prompt: 'b', completions: [' a', ' b', ' c'] }]);
    await expect(loadCompletions(mixed)).rejects.toThrow(`${mixed}:2: 3 completions, but ${mixed}:1 has 2: every row needs the same number (fix it, or skip it with --on-bad-row skip)`);
    const twice = file('twice.jsonl', [{ prompt: 'a', completions: [' a', ' b'] }, { prompt: 'a', completions: [' c', ' d'] }]);
    await expect(loadCompletions(twice)).rejects.toThrow(`${twice}:2: the same prompt as ${twice}:1: give each prompt one row with all its completions`);
    const skipped = await loadCompletions(twice, { onBadRow: 'skip' });
    expect(skipped.prompts).toHaveLength(1);
    expect(skipped.skipped).toEqual([{ file: twice, line: 2, reason: `the same prompt as ${twice}:1: give each prompt one row with all its completions` }]);
  });
});

describe('dpo label --completions', () => {
  it('labels existing completions with no model; a second server on the same output refuses in one line', async () => {
    const completions = file('samples.jsonl', [
      { prompt: 'The movie was', completions: [' great', ' bad'], finish_reasons: ['eos', 'length'] },
      { prompt: chat, completions: ['Red.', 'Blue.'] },
    ]);
    const output = join(dir, 'prefs.jsonl');
    const running = await runLabel({ completions, output, port: 0 });
    try {
      const state = await running.session.state();
      expect(state.item).toMatchObject({ index: 0, prompt: 'The movie was', completions: [' great', ' bad'], finishReasons: ['eos', 'length'] });
      const second = await runCli(['label', '--completions', completions, '--output', output, '--port', '0']);
      expect(second.code).toBe(1);
      expect(second.stderr).toMatch(new RegExp(`^dpo: ${output.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is in use by another dpo run \\(pid ${process.pid}, dpo label, started [^)]+\\); wait for it or stop it, or give another --output\\n$`));
      await running.session.decide(0, { kind: 'rank', order: [0, 1] });
      const last = await running.session.decide(1, { kind: 'rank', order: [1, 0] });
      expect(last.item).toBeNull();
    } finally {
      await running.close();
    }
    expect(readFileSync(output, 'utf8')).toBe(
      `${JSON.stringify({ prompt: 'The movie was', chosen: ' great', rejected: ' bad' })}\n${JSON.stringify({ prompt: chat, chosen: [{ role: 'assistant', content: 'Blue.' }], rejected: [{ role: 'assistant', content: 'Red.' }] })}\n`,
    );
    // The lock is given back: the same command resumes.
    const again = await runLabel({ completions, output, port: 0 });
    expect(again.session.snapshot()).toMatchObject({ done: 2, total: 2 });
    await again.close();
  });

  it('refuses mixed or missing sources and sampling flags in one line', async () => {
    const completions = file('c.jsonl', [{ prompt: 'a', completions: [' a', ' b'] }]);
    const out = join(dir, 'o.jsonl');
    const cases: [string[], string][] = [
      [['--completions', completions, '--model', 'm'], '--model: --completions labels existing completions; sampling options do not apply'],
      [['--completions', completions, '--temperature', '0.5'], '--temperature: --completions labels existing completions; sampling options do not apply'],
      [['--completions', completions, '--num-completions', '3'], `--num-completions 3: ${completions} has 2 completions per row`],
      [['--model', 'm'], "give --model and --prompts (sample the completions), or --completions FILE (label existing ones); see 'dpo label --help'"],
      [['--completions', file('bad.jsonl', [{ prompt: 'a', completions: [' a'] }])], `${join(dir, 'bad.jsonl')}:1: 'completions' has 1; expected 2 to 9 (one key each) (fix it, or skip it with --on-bad-row skip)`],
      [['--completions', join(dir, 'o.jsonl'), '--port', '0'], `--output: ${out} is the completions file; choose another output file`],
    ];
    for (const [args, message] of cases) {
      const run = await runCli(['label', ...args, '--output', out]);
      expect(run, args.join(' ')).toMatchObject({ code: 1, stderr: `dpo: ${message}\n` });
    }
    const help = await runCli(['label', '--help']);
    expect(help.stdout).toContain('--completions <path>');
    expect(help.stdout).toContain('"finish_reasons"');
  });
});
