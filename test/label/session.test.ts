/** The labelling session and its files, with a stand-in sampler (no model, no browser). */
import { mkdtempSync, readFileSync, rmSync, writeFileSync, appendFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LabelSession, type SampleCompletions } from '../../src/label/session.js';
import { LabelStore, labelLockPath, skippedPath, type OpenRowFile } from '../../src/label/store.js';
import { appendWith, fullDisk } from './row-files.js';
import { LabelError } from '../../src/label/errors.js';
import { loadPreferenceData } from '../../src/data/load.js';
import type { PromptRow } from '../../src/generate/prompts.js';

const dir = mkdtempSync(join(tmpdir(), 'dpo-label-session-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const prompts: PromptRow[] = ['a', 'b', 'c'].map((p, i) => ({ text: p, prompt: p, origin: { file: 'p.jsonl', line: i + 1 } }));
/** Completions that name their prompt, sample and seed; prompt 'c' gets two identical ones. */
const sample: SampleCompletions = async (text, k, seed) => Array.from({ length: k }, (_, i) => (text === 'c' ? ' same' : ` ${text}${i}/${seed % 1000}`));

const stores: LabelStore[] = [];
afterAll(async () => {
  for (const s of stores) await s.close();
});

async function session(output: string, numCompletions = 2, openRow?: OpenRowFile): Promise<LabelSession> {
  const store = await LabelStore.open(output, { openFile: openRow });
  stores.push(store);
  return new LabelSession({ prompts, numCompletions, sample, store });
}

/** Gives the lock of every store opened so far back (a resumed session opens its own). */
async function closeAll(): Promise<void> {
  for (const s of stores.splice(0)) await s.close();
}

function rows(path: string): unknown[] {
  return existsSync(path) ? readFileSync(path, 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as unknown) : [];
}

describe('LabelSession', () => {
  it('appends after existing bytes (adding the missing newline), undoes back to them exactly, resumes where it stopped; skipped prompts come back', async () => {
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
    expect((await s.state()).item?.index).toBe(2); // not again in this session
    await closeAll();
    // A skip means "not now": the resumed session offers prompt 1 again, with the same completions.
    const later = await session(output);
    const again = await later.state();
    expect(again.item?.index).toBe(1);
    expect(again.item?.completions).toEqual([c0, c1]);
    expect(again.counts).toEqual({ preferences: 1, ties: 0, skips: 1 });
    expect(JSON.parse(readFileSync(skippedPath(output), 'utf8')).completions).toEqual([c0, c1]);
    const decided = await later.decide(1, { kind: 'rank', order: [0, 1] });
    expect(decided.counts).toEqual({ preferences: 2, ties: 0, skips: 0 });
    expect((await later.undo()).counts).toEqual({ preferences: 1, ties: 0, skips: 1 }); // skipped again, as before
    await later.decide(1, { kind: 'tie' });
    await closeAll();
    // Decided (a tie) since the skip: not offered again.
    const third = await session(output);
    expect((await third.state()).item?.index).toBe(2);
    expect((await third.state()).counts).toEqual({ preferences: 1, ties: 1, skips: 0 });
    await closeAll();
  });

  it('refuses a choice dpo train would reject (identical completions) and writes nothing', async () => {
    const output = join(dir, 'same.jsonl');
    writeFileSync(output, '{"prompt": "a", "chosen": " x", "rejected": " y"}\n{"prompt": "b", "chosen": " x", "rejected": " y"}\n');
    const s = await session(output);
    await expect(s.decide(2, { kind: 'rank', order: [0, 1] })).rejects.toThrow(/identical: press t \(tie\) or s \(skip\) instead/);
    expect(readFileSync(output, 'utf8').split('\n')).toHaveLength(3);
    await expect(s.decide(0, { kind: 'tie' })).rejects.toThrow('prompt 1 is decided already');
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
    await closeAll();
  });

  it('eight simultaneous decisions on one prompt append exactly one row (both orders; one request id or eight)', async () => {
    for (const ids of ['same', 'different'] as const) {
      const output = join(dir, `race-${ids}.jsonl`);
      const s = await session(output);
      await s.state();
      const results = await Promise.allSettled(
        Array.from({ length: 8 }, (_, i) => s.decide(0, { kind: 'rank', order: i % 2 ? [0, 1] : [1, 0] }, ids === 'same' ? 'req-1' : `req-${i}`)),
      );
      expect(rows(output)).toHaveLength(1);
      // The first request to arrive wins (order [1, 0]); the others find the prompt decided.
      expect((rows(output)[0] as { prompt: string; chosen: string }).chosen).toMatch(/^ a1\//);
      const ok = results.filter((r) => r.status === 'fulfilled');
      if (ids === 'same') expect(ok).toHaveLength(8); // a repeated request answers the state, writes nothing
      else {
        expect(ok).toHaveLength(1);
        for (const r of results.filter((x) => x.status === 'rejected')) expect((r as PromiseRejectedResult).reason).toMatchObject({ status: 409 });
      }
      expect((await s.state()).item?.index).toBe(1);
      await closeAll();
    }
  });

  it('an undo racing a decision waits for it and undoes that one, never the confirmed one before it', async () => {
    const output = join(dir, 'undo-race.jsonl');
    let slow = false;
    const s = await session(output, 2, appendWith(async () => {
      if (slow) await new Promise((r) => setTimeout(r, 200));
      return undefined;
    }));
    await s.state();
    await s.decide(0, { kind: 'rank', order: [0, 1] }, 'first'); // confirmed
    slow = true;
    const second = s.decide(1, { kind: 'rank', order: [1, 0] }, 'second');
    const undo = s.undo('second');
    await second;
    const after = await undo;
    expect(rows(output).map((r) => (r as { prompt: string }).prompt)).toEqual(['a']);
    expect(after.item?.index).toBe(1);
    expect(after.lastDecision).toBe('first');
    // The same undo again is a no-op; an undo of a decision that is no longer the last is refused.
    expect((await s.undo('second')).item?.index).toBe(1);
    await s.decide(1, { kind: 'tie' }, 'third');
    await expect(s.undo('first')).rejects.toThrow('no longer the last one');
    expect(rows(output)).toHaveLength(1);
    await closeAll();
  });

  it('a full disk: a short write then ENOSPC leaves the file as it was, answers an error, and the same decision succeeds later', async () => {
    const output = join(dir, 'full.jsonl');
    const existing = '{"prompt": "a", "chosen": " x", "rejected": " y"}\n';
    writeFileSync(output, existing);
    let full = true;
    const s = await session(output, 2, fullDisk(() => full));
    const before = await s.state();
    const err = await s.decide(1, { kind: 'rank', order: [1, 0] }, 'r1').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LabelError);
    expect(err).toMatchObject({ status: 507 });
    expect((err as Error).message).toBe(`could not save the decision to ${output} (ENOSPC: no space left on device, write); nothing was written: free some space and choose again`);
    expect(readFileSync(output, 'utf8')).toBe(existing);
    const kept = await s.state();
    expect(kept.item).toEqual(before.item);
    expect(kept.counts).toEqual(before.counts);
    expect(kept.canUndo).toBe(false);
    await expect(s.decide(1, { kind: 'skip' }, 'r2')).rejects.toThrow('nothing was written');
    expect(existsSync(skippedPath(output)) ? readFileSync(skippedPath(output), 'utf8') : '').toBe('');
    full = false;
    const done = await s.decide(1, { kind: 'rank', order: [1, 0] }, 'r1');
    expect(done.item?.index).toBe(2);
    expect(rows(output)).toHaveLength(2);
    expect((await loadPreferenceData(output)).examples).toHaveLength(2);
    await closeAll();
  });

  it('one writer per output: a second store on the same output refuses in one line until the first closes', async () => {
    const output = join(dir, 'locked.jsonl');
    const first = await LabelStore.open(output);
    const second = await LabelStore.open(output).catch((e: Error) => e);
    expect(second).toBeInstanceOf(Error);
    expect((second as Error).message).toMatch(new RegExp(`^${output.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is in use by another dpo run \\(pid ${process.pid}, dpo label, started [^)]+\\); wait for it or stop it, or give another --output$`));
    expect(existsSync(labelLockPath(output))).toBe(true);
    const other = await LabelStore.open(join(dir, 'locked-other.jsonl')); // another output in the same folder is fine
    await other.close();
    await first.close();
    expect(existsSync(labelLockPath(output))).toBe(false);
    const third = await LabelStore.open(output);
    await third.close();
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
