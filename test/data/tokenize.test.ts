import { describe, expect, it } from 'vitest';
import { preferenceExamplesFromRows, sftExamplesFromRows, tokenizePreferences, tokenizeSft, truncateRow, type PreferenceExample } from '../../src/data/index.js';
import { BOS, EOS, FakeTokenizer } from './helpers.js';

const origin = { file: 'mem', line: 0 };
const ex = (prompt: string, ...completions: string[]): PreferenceExample => ({ prompt, completions, origin });

describe('tokenization', () => {
  it('prompt ids = encode(prompt); completion ids = the rest of encode(prompt + completion), then EOS', () => {
    const tok = new FakeTokenizer();
    const { rows, stats } = tokenizePreferences([ex('The capital is', ' Paris.', ' Lyon, maybe.')], tok);
    const [row] = rows;
    expect(row.promptIds).toEqual(tok.encode('The capital is'));
    expect(row.completionIds[0]).toEqual([...tok.encode(' Paris.'), EOS]);
    expect(tok.decode(row.completionIds[1])).toBe(' Lyon, maybe.</s>');
    expect(row.origin).toBe(origin);
    expect(stats).toEqual({
      rows: 1,
      droppedTooLong: 0,
      promptNotPrefix: 0,
      truncated: 0,
      identicalAfterTruncation: 0,
      skippedBad: 0,
      totalTokens: 2 * 3 + 2 + 3,
    });
  });

  it('counts rows whose prompt ids are not a prefix; each sequence is still encode(prompt + completion)', () => {
    const tok = new FakeTokenizer();
    // "is " ends with a lone space token; in "is Paris" the space merges into " Paris".
    const { rows, stats } = tokenizePreferences([ex('It is ', 'Paris', 'Lyon'), ex('Fine', ' a', ' b')], tok);
    expect(stats.promptNotPrefix).toBe(1);
    expect(rows[0].promptIds).toEqual(tok.encode('It is'));
    expect([...rows[0].promptIds, ...rows[0].completionIds[0]]).toEqual([...tok.encode('It is Paris'), EOS]);
    expect([...rows[0].promptIds, ...rows[0].completionIds[1]]).toEqual([...tok.encode('It is Lyon'), EOS]);
    expect(rows[1].promptIds).toEqual(tok.encode('Fine'));
  });

  it('adds BOS when the tokenizer has one, but never twice', () => {
    const tok = new FakeTokenizer({ bos: true });
    const [plain] = tokenizePreferences([ex('Hi', ' a', ' b')], tok).rows;
    expect(plain.promptIds).toEqual([BOS, ...tok.encode('Hi')]);
    const [templated] = tokenizePreferences([ex('<s>Hi', ' a', ' b')], tok).rows;
    expect(templated.promptIds).toEqual(tok.encode('<s>Hi'));
    expect(templated.promptIds.filter((id) => id === BOS)).toHaveLength(1);
    expect(tokenizePreferences([ex('Hi', ' a', ' b')], tok, { addBos: false }).rows[0].promptIds).toEqual(tok.encode('Hi'));
    expect(() => tokenizePreferences([ex('Hi', ' a', ' b')], new FakeTokenizer(), { addBos: true })).toThrow(/no BOS/);
  });

  it('SFT text rows: empty prompt (or BOS), every token in the completion', () => {
    const tok = new FakeTokenizer();
    const sft = [{ prompt: '', completion: 'Once upon a time', origin }];
    expect(tokenizeSft(sft, tok).rows[0]).toEqual({ promptIds: [], completionIds: [[...tok.encode('Once upon a time'), EOS]], origin });
    expect(tokenizeSft(sft, new FakeTokenizer({ bos: true })).rows[0].promptIds).toEqual([BOS]);
  });

  it('conversational rows: completions end with the end-of-turn token, no EOS appended, one BOS', () => {
    const tok = new FakeTokenizer({ bos: true, templateBos: true, endOfTurn: true });
    const eot = tok.chatEndOfTurn!.id;
    const pref = preferenceExamplesFromRows(
      [{ prompt: [{ role: 'user', content: 'Hi' }], chosen: [{ role: 'assistant', content: 'Hello!' }], rejected: [{ role: 'assistant', content: 'Go.' }] }],
      { tokenizer: tok },
    ).examples;
    // The template's newline after the last <|end|> is not part of the completion.
    expect(pref[0].completions).toEqual(['Hello!<|end|>', 'Go.<|end|>']);
    expect(pref[0].endsWithEndOfTurn).toBe(true);
    const [row] = tokenizePreferences(pref, tok).rows;
    expect(row.promptIds).toEqual(tok.encode('<s><|user|>\nHi<|end|>\n<|assistant|>\n'));
    expect([...row.promptIds, ...row.completionIds[0]]).toEqual(tok.encode('<s><|user|>\nHi<|end|>\n<|assistant|>\nHello!<|end|>'));
    expect(row.completionIds.map((c) => c[c.length - 1])).toEqual([eot, eot]);

    // A whole conversation (SFT messages): the template's BOS becomes the prompt, not a second BOS.
    const sft = sftExamplesFromRows([{ messages: [{ role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Yo' }] }], { tokenizer: tok }).examples;
    const [whole] = tokenizeSft(sft, tok).rows;
    expect(whole.promptIds).toEqual([BOS]);
    expect([...whole.promptIds, ...whole.completionIds[0]]).toEqual(tok.encode('<s><|user|>\nHi<|end|>\n<|assistant|>\nYo<|end|>'));

    // Without an end-of-turn token the rendering is kept whole and EOS is appended, as for text.
    const plain = new FakeTokenizer();
    const kept = preferenceExamplesFromRows([{ chosen: [{ role: 'user', content: 'a' }, { role: 'assistant', content: 'b' }], rejected: [{ role: 'user', content: 'a' }, { role: 'assistant', content: 'c' }] }], { tokenizer: plain }).examples;
    expect(kept[0].endsWithEndOfTurn).toBeUndefined();
    expect(tokenizePreferences(kept, plain).rows[0].completionIds[0]).toEqual([...plain.encode('b<|end|>\n'), EOS]);
  });

  it('rejects bad limits', () => {
    const tok = new FakeTokenizer();
    expect(() => tokenizePreferences([], tok, { maxLength: 0 })).toThrow(/maxLength must be a positive integer/);
    expect(() => tokenizePreferences([], tok, { truncationMode: 'middle' as 'keep_end' })).toThrow(/truncationMode/);
  });
});

describe('truncation', () => {
  const P = [10, 11, 12, 13, 14, 15];
  const C = [
    [20, 21, 22, EOS],
    [30, EOS],
  ];

  it('leaves rows that fit alone', () => {
    expect(truncateRow(P, C, { maxLength: 10 }, false)).toEqual({ promptIds: P, completionIds: C, truncated: false, cutBy: [] });
  });

  it('keep_end drops tokens from the prompt start (keeping BOS) so the longest completion fits', () => {
    expect(truncateRow(P, C, { maxLength: 8, truncationMode: 'keep_end' }, false)).toEqual({
      promptIds: [12, 13, 14, 15],
      completionIds: C,
      truncated: true,
      cutBy: ['maxLength'],
    });
    expect(truncateRow([BOS, ...P], C, { maxLength: 8 }, true)?.promptIds).toEqual([BOS, 13, 14, 15]);
    // Completions longer than maxLength - 1: one prompt token stays, completions are cut (EOS lost).
    expect(truncateRow(P, C, { maxLength: 3 }, false)).toEqual({ promptIds: [15], completionIds: [[20, 21], [30, EOS]], truncated: true, cutBy: ['maxLength'] });
    expect(truncateRow([BOS, ...P], C, { maxLength: 2 }, true)).toBeUndefined();
  });

  it('keep_start cuts the completion ends and drops rows whose prompt fills maxLength', () => {
    expect(truncateRow(P, C, { maxLength: 8, truncationMode: 'keep_start' }, false)).toEqual({
      promptIds: P,
      completionIds: [[20, 21], [30, EOS]],
      truncated: true,
      cutBy: ['maxLength'],
    });
    expect(truncateRow(P, C, { maxLength: 6, truncationMode: 'keep_start' }, false)).toBeUndefined();
  });

  it('maxPromptLength keeps the prompt end (keep_end) or start (keep_start); maxCompletionLength cuts completions', () => {
    expect(truncateRow(P, C, { maxPromptLength: 2 }, false)?.promptIds).toEqual([14, 15]);
    expect(truncateRow([BOS, ...P], C, { maxPromptLength: 3 }, true)?.promptIds).toEqual([BOS, 14, 15]);
    expect(truncateRow(P, C, { maxPromptLength: 2, truncationMode: 'keep_start' }, false)?.promptIds).toEqual([10, 11]);
    expect(truncateRow(P, C, { maxCompletionLength: 2 }, false)?.completionIds).toEqual([[20, 21], [30, EOS]]);
  });

  it('stats count dropped and truncated rows and the tokens kept', () => {
    const tok = new FakeTokenizer();
    const rows = [ex('a b c d e f', ' x', ' y'), ex('a', ' x y z', ' w'), ex('a', ' x', ' y')];
    const { rows: kept, stats } = tokenizePreferences(rows, tok, { maxLength: 4, truncationMode: 'keep_start' });
    expect(stats).toMatchObject({ rows: 2, droppedTooLong: 1, truncated: 1 });
    expect(kept[0].completionIds).toEqual([tok.encode(' x y z'), [...tok.encode(' w'), EOS]]);
    expect(stats.totalTokens).toBe(4 + 3 + 3 + 3);
  });
});
