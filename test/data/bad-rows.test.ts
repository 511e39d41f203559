import { describe, expect, it } from 'vitest';
import { BAD_ROW_LIST_CAP, loadPreferenceData, preferenceExamplesFromRows } from '../../src/data/index.js';
import { DpoError } from '../../src/errors.js';
import { FakeTokenizer, fixture } from './helpers.js';

const BAD_REASONS = [
  [2, /^invalid JSON: /],
  [3, /^missing field 'rejected'$/],
  [4, /^field 'chosen' must be a string, got number$/],
  [5, /^empty completion 'chosen'$/],
  [6, /^chosen and rejected are identical$/],
  [7, /^row is not an object \(got array\)$/],
] as const;

describe('bad rows', () => {
  it("'skip' returns the good rows and every skipped one, in file order", async () => {
    const data = await loadPreferenceData(fixture('bad.jsonl'), { onBadRow: 'skip' });
    expect(data.examples.map((e) => e.origin.line)).toEqual([1, 8]);
    expect(data.badRows.map((b) => b.line)).toEqual(BAD_REASONS.map(([line]) => line));
    data.badRows.forEach((b, i) => expect(b.reason).toMatch(BAD_REASONS[i][1]));
    expect(data.files[0]).toMatchObject({ rows: 2, badRows: 6 });
  });

  it("'error' (the default) throws one DpoError listing file:line: reason", async () => {
    const err = await loadPreferenceData(fixture('bad.jsonl')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DpoError);
    const lines = (err as Error).message.split('\n');
    expect(lines[0]).toMatch(/^6 malformed data rows/);
    expect(lines.slice(1)).toHaveLength(6);
    lines.slice(1).forEach((l, i) => expect(l.trim().startsWith(`${fixture('bad.jsonl')}:${BAD_REASONS[i][0]}: `)).toBe(true));
  });

  it('ranking problems', async () => {
    const data = await loadPreferenceData(fixture('bad-ranking.jsonl'), { onBadRow: 'skip' });
    expect(data.examples).toHaveLength(1);
    expect(data.badRows.map((b) => b.reason)).toEqual([
      'a ranking needs at least 2 completions, got 1',
      "field 'completions' must be an array, got string",
      'completions[1] must be a string, got number',
      'completions[0] and completions[2] are identical',
    ]);
  });

  it(`lists at most ${BAD_ROW_LIST_CAP} rows, then says how many more`, () => {
    const rows = Array.from({ length: 25 }, (_, i) => ({ prompt: `p${i}`, chosen: 'same', rejected: 'same' }));
    let message = '';
    try {
      preferenceExamplesFromRows(rows, { source: 'mem' });
    } catch (e) {
      message = (e as Error).message;
    }
    const lines = message.split('\n');
    expect(lines[0]).toMatch(/^25 malformed data rows/);
    expect(lines).toHaveLength(1 + BAD_ROW_LIST_CAP + 1);
    expect(lines[1].trim()).toBe('mem:0: chosen and rejected are identical');
    expect(lines[lines.length - 1].trim()).toBe('and 5 more');
  });

  it('message fields are checked too', () => {
    const user = [{ role: 'user', content: 'q' }];
    const data = preferenceExamplesFromRows(
      [
        { prompt: user, chosen: [{ role: 'assistant' }], rejected: [{ role: 'assistant', content: 'b' }] },
        { prompt: user, chosen: 'text', rejected: [{ role: 'assistant', content: 'b' }] },
        { prompt: user, chosen: [], rejected: [{ role: 'assistant', content: 'b' }] },
      ],
      { onBadRow: 'skip', tokenizer: new FakeTokenizer() },
    );
    expect(data.badRows.map((b) => b.reason)).toEqual([
      'chosen[0].content must be a string, got undefined',
      "field 'chosen' must be a list of messages, got string",
      "field 'chosen' is an empty list of messages",
    ]);
  });
});
