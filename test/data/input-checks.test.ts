/**
 * Input that used to pass silently: invalid UTF-8 (replaced by U+FFFD), completions made identical
 * by truncation, binary bytes echoed raw to the terminal.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readDataFile } from '../../src/data/read.js';
import { formatBadRow } from '../../src/data/bad-rows.js';
import { tokenizePreferences } from '../../src/data/index.js';
import { printable } from '../../src/errors.js';
import { describeData } from '../../src/train/core/data-report.js';
import { main } from '../../src/cli/main.js';
import { tempDir } from '../train/helpers.js';
import { FakeTokenizer } from './helpers.js';

describe('data input checks', () => {
  it('reports invalid UTF-8 as file:line instead of replacing it', async () => {
    const dir = tempDir('dpo-ts-utf8-');
    const file = join(dir, 'd.jsonl');
    const good = Buffer.from('{"prompt":"é ok","chosen":"a","rejected":"b"}\n');
    const bad = Buffer.concat([Buffer.from('{"prompt":"caf'), Buffer.from([0xe9]), Buffer.from('","chosen":"a","rejected":"b"}\r\n')]);
    writeFileSync(file, Buffer.concat([good, bad, good]));
    const r = await readDataFile(file);
    expect(r.rows.map((x) => x.origin.line)).toEqual([1, 3]);
    expect((r.rows[0].value as { prompt: string }).prompt).toBe('é ok');
    expect(r.bad).toEqual([{ file, line: 2, reason: expect.stringMatching(/invalid UTF-8 at byte 15 of the line/) }]);

    const arr = join(dir, 'd.json');
    writeFileSync(arr, Buffer.concat([Buffer.from('[\n{"prompt":"x",\n"chosen":"'), Buffer.from([0xff, 0xfe]), Buffer.from('","rejected":"b"}]')]));
    await expect(readDataFile(arr)).rejects.toThrow(/d\.json:3: invalid UTF-8/);
  });

  it('counts and warns about rows whose completions become identical after truncation', () => {
    const tok = new FakeTokenizer();
    const origin = { file: 'mem', line: 0 };
    const rows = [
      { prompt: 'Q', completions: [' same start then good', ' same start then bad'], origin },
      { prompt: 'Q', completions: [' x', ' y'], origin },
    ];
    const full = tokenizePreferences(rows, tok);
    expect(full.stats.identicalAfterTruncation).toBe(0);
    const cut = tokenizePreferences(rows, tok, { maxCompletionLength: 2 });
    expect(cut.stats.identicalAfterTruncation).toBe(1);
    expect(describeData('train', cut.stats, 1024)).toMatch(/warning: 1 rows whose completions are identical after truncation/);
  });

  it('never echoes control bytes of binary input to the terminal', async () => {
    expect(printable('a\x1b[2Jb\x00c\n\td\x9b')).toBe('a\\x1b[2Jb\\x00c\n\td\\x9b');
    expect(formatBadRow({ file: 'f', line: 1, reason: 'invalid JSON: "\x07\x1b]0;pwned\x07"' })).toBe('f:1: invalid JSON: "\\x07\\x1b]0;pwned\\x07"');
    const dir = tempDir('dpo-ts-bin-');
    const data = join(dir, 'data.jsonl');
    writeFileSync(data, Buffer.from('\x1b[31m\x00\x01binary\x07\n'));
    const err: string[] = [];
    const io = { stdout: { write: () => true }, stderr: { write: (s: string) => err.push(s) } };
    const code = await main(['train', '--model', dir, '--data', data, '--output', join(dir, 'out')], io);
    expect(code).toBe(1);
    expect(err.join('')).not.toMatch(/[\x00-\x08\x1b]/);
  });
});
