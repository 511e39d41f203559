import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { listDataFiles, readDataFile, readDataPath } from '../../src/data/index.js';
import { DpoError } from '../../src/errors.js';
import { fixture } from './helpers.js';

describe('reading data files', () => {
  it('reads JSONL with 1-based line numbers, skipping blank lines', async () => {
    const { rows, bad } = await readDataFile(fixture('pairs.jsonl'));
    expect(bad).toEqual([]);
    expect(rows.map((r) => r.origin.line)).toEqual([1, 2, 4]);
    expect(rows[2].value).toEqual({ prompt: 'Say hi', chosen: ' hi there', rejected: ' go away' });
    expect(rows[0].origin.file).toBe(fixture('pairs.jsonl'));
  });

  it('turns an invalid JSONL line into a bad row and keeps going', async () => {
    const { rows, bad } = await readDataFile(fixture('bad.jsonl'));
    expect(bad).toHaveLength(1);
    expect(bad[0].line).toBe(2);
    expect(bad[0].reason).toMatch(/^invalid JSON: /);
    expect(rows).toHaveLength(7);
  });

  it('reads a JSON array with 0-based row indexes', async () => {
    const { rows } = await readDataFile(fixture('conversational.json'));
    expect(rows.map((r) => r.origin.line)).toEqual([0, 1]);
  });

  it('reads Parquet strings, ints, nulls, lists and structs', async () => {
    const pairs = await readDataFile(fixture('pairs.parquet'));
    expect(pairs.rows.map((r) => r.origin.line)).toEqual([0, 1, 2, 3]);
    expect(pairs.rows[2].value).toMatchObject({ prompt: 'Café means', chosen: ' coffee ☕.' });
    expect(pairs.rows[3].value).toMatchObject({ chosen: null });
    const conv = await readDataFile(fixture('conversational.parquet'));
    expect(conv.rows[1].value).toEqual({
      prompt: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Two plus two?' },
      ],
      chosen: [{ role: 'assistant', content: 'Four.' }],
      rejected: [{ role: 'assistant', content: 'Five.' }],
    });
    const ranking = await readDataFile(fixture('ranking.parquet'));
    expect(ranking.rows.map((r) => r.value)).toEqual([
      { prompt: 'Rate:', completions: [' best', ' good', ' bad'] },
      { prompt: 'Pick:', completions: [' one', ' two', ' three'] },
      { prompt: 'Empty list:', completions: [] },
    ]);
  });

  it('lists a folder recursively, data files only, sorted by path', async () => {
    const files = await listDataFiles(fixture('folder'));
    expect(files).toEqual([fixture('folder/a.json'), fixture('folder/b.jsonl'), fixture('folder/sub/c.jsonl')]);
    const all = await readDataPath(fixture('folder'));
    expect(all.map((f) => f.rows.length)).toEqual([1, 1, 1]);
  });

  it('fails clearly on file-level problems', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dpo-data-'));
    writeFileSync(join(dir, 'obj.json'), '{"prompt": "x"}');
    writeFileSync(join(dir, 'broken.json'), '[{"prompt": ');
    writeFileSync(join(dir, 'notes.txt'), 'hi');
    await expect(readDataFile(join(dir, 'obj.json'))).rejects.toThrow(/expected a JSON array/);
    await expect(readDataFile(join(dir, 'broken.json'))).rejects.toThrow(/invalid JSON/);
    await expect(listDataFiles(join(dir, 'notes.txt'))).rejects.toThrow(/unsupported data file/);
    await expect(listDataFiles(join(dir, 'missing.jsonl'))).rejects.toBeInstanceOf(DpoError);
    const empty = mkdtempSync(join(tmpdir(), 'dpo-data-'));
    await expect(listDataFiles(empty)).rejects.toThrow(/no .*files in this folder/);
  });

  it('strips a UTF-8 BOM', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dpo-data-'));
    writeFileSync(join(dir, 'bom.jsonl'), '\ufeff{"text": "a"}\n');
    writeFileSync(join(dir, 'bom.json'), '\ufeff[{"text": "a"}]');
    expect((await readDataFile(join(dir, 'bom.jsonl'))).rows[0].value).toEqual({ text: 'a' });
    expect((await readDataFile(join(dir, 'bom.json'))).rows[0].value).toEqual({ text: 'a' });
  });
});
