/** The labelling session and its files, with a stand-in sampler (no model, no browser). */
import { mkdtempSync, readFileSync, rmSync, writeFileSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LabelSession, type SampleCompletions } from '../../src/label/session.js';
import { LabelStore, skippedPath } from '../../src/label/store.js';
import type { PromptRow } from '../../src/generate/prompts.js';

const dir = mkdtempSync(join(tmpdir(), 'dpo-label-session-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const prompts: PromptRow[] = ['a', 'b', 'c'].map((p, i) => ({ text: p, prompt: p, origin: { file: 'p.jsonl', line: i + 1 } }));
/** Completions that name their prompt, sample and seed; prompt 'c' gets two identical ones. */
const sample: SampleCompletions = async (text, k, seed) => Array.from({ length: k }, (_, i) => (text === 'c' ? ' same' : ` ${text}${i}/${seed % 1000}`));

async function session(output: string, numCompletions = 2): Promise<LabelSession> {
  return new LabelSession({ prompts, numCompletions, sample, store: await LabelStore.open(output) });
}

describe('LabelSession', () => {
  it('appends after existing bytes (adding the missing newline), undoes back to them exactly, resumes where it stopped', async () => {
    const output = join(dir, 'resume.jsonl');
    const existing = '{"prompt": "a", "chosen": " x", "rejected": " y"}'; // no final newline
    writeFileSync(output, existing);
    const s = await session(output);
    const state = await s.state();
    expect(state.item?.index).toBe(1);
    expect(state.done).toBe(1);
    const [c0, c1] = state.item?.completions ?? [];
    await s.decide(1, { kind: 'rank', order: [1, 0] });
    expect(readFileSync(output, 'utf8')).toBe(`${existing}\n${JSON.stringify({ prompt: 'b', chosen: c1, rejected: c0 })}\n`);
    const back = await s.undo();
    expect(readFileSync(output, 'utf8')).toBe(existing);
    expect(back.item?.index).toBe(1);
    expect(back.item?.completions).toEqual([c0, c1]);
    expect((await s.undo()).canUndo).toBe(false); // nothing of this session left to undo: the old row stays
    expect(readFileSync(output, 'utf8')).toBe(existing);

    await s.decide(1, { kind: 'skip' });
    const later = await session(output);
    expect((await later.state()).item?.index).toBe(2);
    expect((await later.state()).counts).toEqual({ preferences: 1, ties: 0, skips: 1 });
    // The same seed per prompt: a resumed session shows the same completions.
    expect(JSON.parse(readFileSync(skippedPath(output), 'utf8')).completions).toEqual([c0, c1]);
  });

  it('refuses a choice dpo train would reject (identical completions) and writes nothing', async () => {
    const output = join(dir, 'same.jsonl');
    writeFileSync(output, '{"prompt": "a", "chosen": " x", "rejected": " y"}\n{"prompt": "b", "chosen": " x", "rejected": " y"}\n');
    const s = await session(output);
    await expect(s.decide(2, { kind: 'rank', order: [0, 1] })).rejects.toThrow(/identical: press t \(tie\) or s \(skip\) instead/);
    expect(readFileSync(output, 'utf8').split('\n')).toHaveLength(3);
    await expect(s.decide(0, { kind: 'tie' })).rejects.toThrow('prompt 0 is not the one being labelled');
    await expect(s.decide(2, { kind: 'rank', order: [0, 0] })).rejects.toThrow('a ranking must order all 2 completions once');
    expect((await s.decide(2, { kind: 'tie' })).item).toBeNull();
  });

  it('names the file and line of a malformed output file, and will not undo over changes made meanwhile', async () => {
    const bad = join(dir, 'bad.jsonl');
    writeFileSync(bad, '{"prompt": "a", "chosen": " x", "rejected": " y"}\nnot json\n');
    await expect(LabelStore.open(bad)).rejects.toThrow(`${bad}:2: not valid JSON`);

    const output = join(dir, 'meanwhile.jsonl');
    const s = await session(output, 3);
    const { item } = await s.state();
    await s.decide(0, { kind: 'rank', order: [2, 0, 1] });
    expect(JSON.parse(readFileSync(output, 'utf8'))).toEqual({ prompt: 'a', completions: [item?.completions[2], item?.completions[0], item?.completions[1]] });
    appendFileSync(output, '{"prompt": "zz", "chosen": " p", "rejected": " q"}\n');
    await expect(s.undo()).rejects.toThrow('changed outside this labelling session');
  });
});

describe('dpo label flags', () => {
  it('reports bad flags and a malformed output file in one line, before loading the model', async () => {
    const { runCli } = await import('../cli/run-cli.js');
    const base = ['label', '--model', 'no-such-model-folder', '--prompts', 'p.jsonl'];
    expect((await runCli([...base, '--output', join(dir, 'o.jsonl'), '--num-completions', '1'])).stderr).toBe("dpo: --num-completions: expected an integer >= 2, got '1'\n");
    expect((await runCli([...base, '--output', join(dir, 'o.jsonl'), '--num-completions', '12'])).stderr).toBe('dpo: --num-completions: expected an integer from 2 to 9 (one key each), got 12\n');
    expect((await runCli([...base, '--output', join(dir, 'o.jsonl'), '--port', '70000'])).stderr).toBe("dpo: --port: expected a port number up to 65535, got '70000'\n");
    const bad = join(dir, 'broken.jsonl');
    writeFileSync(bad, '{"prompt": 1}\n{oops\n');
    const run = await runCli([...base, '--output', bad]);
    expect(run).toMatchObject({ code: 1, stderr: `dpo: ${bad}:2: not valid JSON; fix or move the file before resuming\n` });
    expect(readFileSync(bad, 'utf8')).toBe('{"prompt": 1}\n{oops\n');
    const prompts = join(dir, 'prompts.jsonl');
    writeFileSync(prompts, '{"prompt": "a"}\n');
    const same = await runCli(['label', '--model', 'm', '--prompts', prompts, '--output', join(dir, '.', 'prompts.jsonl')]);
    expect(same.stderr).toBe(`dpo: --output: ${join(dir, 'prompts.jsonl')} is the prompts file; choose another output file\n`);
    expect(readFileSync(prompts, 'utf8')).toBe('{"prompt": "a"}\n');
  });
});
