import { describe, expect, it } from 'vitest';
import {
  extractPromptMessages,
  extractPromptText,
  loadPreferenceData,
  loadSftData,
  preferenceExamplesFromRows,
  sftExamplesFromRows,
  splitAnthropicHh,
} from '../../src/data/index.js';
import { DpoError } from '../../src/errors.js';
import { FakeTokenizer, fixture } from './helpers.js';

const texts = (examples: { prompt: string; completions: string[] }[]) => examples.map((e) => [e.prompt, ...e.completions]);

describe('preference formats', () => {
  it('prompt/chosen/rejected strings', async () => {
    const data = await loadPreferenceData(fixture('pairs.jsonl'));
    expect(data.files).toEqual([{ file: fixture('pairs.jsonl'), format: 'prompt_chosen_rejected', rows: 3, badRows: 0 }]);
    expect(texts(data.examples)).toEqual([
      ['The capital of France is', ' Paris.', ' Lyon.'],
      ['2 + 2 =', ' 4', ' 5'],
      ['Say hi', ' hi there', ' go away'],
    ]);
    expect(data.examples[2].origin).toEqual({ file: fixture('pairs.jsonl'), line: 4 });
  });

  it('chosen/rejected only: the prompt is the common prefix, the space goes to the completions', async () => {
    const data = await loadPreferenceData(fixture('implicit.jsonl'));
    expect(data.files[0].format).toBe('chosen_rejected');
    expect(texts(data.examples)).toEqual([
      ['Q: capital of France? A:', ' Paris', ' Lyon'],
      ['Tell me a joke.', ' Why did the chicken cross?', ' No.'],
    ]);
  });

  it('extractPromptText follows TRL at the edges', () => {
    // One is a prefix of the other: TRL's loop index stays on the last compared character.
    expect(extractPromptText('abc', 'abcd')).toEqual({ prompt: 'ab', chosen: 'c', rejected: 'cd' });
    expect(extractPromptText('xyz', 'abc')).toEqual({ prompt: '', chosen: 'xyz', rejected: 'abc' });
    // Never splits a surrogate pair.
    expect(extractPromptText('x\u{1F600}a', 'x\u{1F603}b').prompt).toBe('x');
  });

  it('extractPromptMessages splits at the first different message', () => {
    const u = { role: 'user', content: 'q' };
    const a = { role: 'assistant', content: 'a' };
    const b = { role: 'assistant', content: 'b' };
    expect(extractPromptMessages([u, a], [u, b])).toEqual({ prompt: [u], chosen: [a], rejected: [b] });
  });

  it('Anthropic HH transcripts split after the last shared Assistant turn', async () => {
    const data = await loadPreferenceData(fixture('hh.jsonl'));
    expect(data.files[0].format).toBe('anthropic_hh');
    expect(texts(data.examples)).toEqual([
      ['\n\nHuman: What is 2+2?\n\nAssistant:', ' 4.', ' 5.'],
      ['\n\nHuman: Hi\n\nAssistant: Hello.\n\nHuman: Name a color.\n\nAssistant:', ' Blue.', " I won't."],
    ]);
    // A response that itself contains the marker does not move the split.
    const tricky = splitAnthropicHh('\n\nHuman: x\n\nAssistant: a\n\nAssistant: b', '\n\nHuman: x\n\nAssistant: c');
    expect(tricky).toEqual({ prompt: '\n\nHuman: x\n\nAssistant:', chosen: ' a\n\nAssistant: b', rejected: ' c' });
    expect(() => splitAnthropicHh('\n\nHuman: a\n\nAssistant: x', '\n\nHuman: b\n\nAssistant: x')).toThrow(/no '\\n\\nAssistant:'/);
  });

  it('conversational rows are rendered with the chat template, as maybe_apply_chat_template', async () => {
    const tokenizer = new FakeTokenizer();
    const data = await loadPreferenceData(fixture('conversational.json'), { tokenizer });
    expect(data.files[0].format).toBe('conversational');
    expect(texts(data.examples)).toEqual([
      ['<|user|>\nHi<|end|>\n<|assistant|>\n', 'Hello!<|end|>\n', 'Bye.<|end|>\n'],
      // No prompt field: the shared first message becomes the prompt.
      ['<|user|>\nCapital of France?<|end|>\n<|assistant|>\n', 'Paris.<|end|>\n', 'Lyon.<|end|>\n'],
    ]);
    const pq = await loadPreferenceData(fixture('conversational.parquet'), { tokenizer });
    expect(texts(pq.examples)[1]).toEqual([
      '<|system|>\nBe brief.<|end|>\n<|user|>\nTwo plus two?<|end|>\n<|assistant|>\n',
      'Four.<|end|>\n',
      'Five.<|end|>\n',
    ]);
  });

  it('conversational data without a chat template fails up front', async () => {
    await expect(loadPreferenceData(fixture('conversational.json'))).rejects.toThrow(/no tokenizer was given/);
    await expect(
      loadPreferenceData(fixture('conversational.json'), { tokenizer: new FakeTokenizer({ chatTemplate: false }) }),
    ).rejects.toThrow(/the tokenizer has no chat template/);
  });

  it('a chat template that rejects a row makes that row bad', () => {
    const rows = [
      { prompt: [{ role: 'tool', content: 'x' }], chosen: [{ role: 'assistant', content: 'a' }], rejected: [{ role: 'assistant', content: 'b' }] },
    ];
    const data = preferenceExamplesFromRows(rows, { tokenizer: new FakeTokenizer(), onBadRow: 'skip' });
    expect(data.badRows).toEqual([{ file: '<rows>', line: 0, reason: 'chat template failed: tool role not supported' }]);
  });

  it('rankings keep their order, best first', async () => {
    const data = await loadPreferenceData(fixture('ranking.jsonl'));
    expect(data.files[0].format).toBe('ranking');
    expect(texts(data.examples)[0]).toEqual(['Best fruit:', ' mango', ' apple', ' lemon']);
    const pq = await loadPreferenceData(fixture('ranking.parquet'), { onBadRow: 'skip' });
    expect(pq.examples).toHaveLength(2);
    expect(pq.badRows).toEqual([{ file: fixture('ranking.parquet'), line: 2, reason: 'a ranking needs at least 2 completions, got 0' }]);
  });

  it('conversational rankings are rendered too', () => {
    const m = (role: string, content: string) => [{ role, content }];
    const data = preferenceExamplesFromRows(
      [{ prompt: m('user', 'Q'), completions: [m('assistant', 'A'), m('assistant', 'B'), m('assistant', 'C')] }],
      { tokenizer: new FakeTokenizer() },
    );
    expect(texts(data.examples)).toEqual([['<|user|>\nQ<|end|>\n<|assistant|>\n', 'A<|end|>\n', 'B<|end|>\n', 'C<|end|>\n']]);
  });

  it('Parquet rows with nulls become bad rows', async () => {
    const data = await loadPreferenceData(fixture('pairs.parquet'), { onBadRow: 'skip' });
    expect(data.examples.map((e) => e.origin.line)).toEqual([0, 1, 2]);
    expect(data.badRows).toEqual([{ file: fixture('pairs.parquet'), line: 3, reason: "missing field 'chosen'" }]);
  });

  it('detects the format per file in a folder, in path order', async () => {
    const data = await loadPreferenceData(fixture('folder'));
    expect(data.files.map((f) => f.format)).toEqual(['prompt_chosen_rejected', 'prompt_chosen_rejected', 'chosen_rejected']);
    expect(texts(data.examples)).toEqual([
      ['A', ' a1', ' a2'],
      ['B', ' b1', ' b2'],
      ['C', ' one', ' two'],
    ]);
  });

  it('an explicit format overrides detection', async () => {
    const forced = await loadPreferenceData(fixture('hh.jsonl'), { format: 'chosen_rejected' });
    expect(forced.examples[0].prompt).toBe('\n\nHuman: What is 2+2?\n\nAssistant:');
    const wrong = await loadPreferenceData(fixture('implicit.jsonl'), { format: 'prompt_chosen_rejected', onBadRow: 'skip' });
    expect(wrong.examples).toEqual([]);
    expect(wrong.badRows.map((b) => b.reason)).toEqual(["missing field 'prompt'", "missing field 'prompt'"]);
    await expect(loadPreferenceData(fixture('pairs.jsonl'), { format: 'nope' as 'ranking' })).rejects.toThrow(/unknown preference format 'nope'/);
  });

  it('a file that fits no format names its fields', async () => {
    const err = await loadPreferenceData(fixture('unknown.jsonl')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DpoError);
    expect((err as Error).message).toMatch(/unknown\.jsonl: cannot tell the preference format \(fields: question, answer;/);
  });
});

describe('SFT formats', () => {
  it('text rows train on everything', async () => {
    const data = await loadSftData(fixture('sft-text.jsonl'));
    expect(data.files[0].format).toBe('text');
    expect(data.examples.map((e) => [e.prompt, e.completion])).toEqual([
      ['', 'Once upon a time'],
      ['', 'The end'],
    ]);
  });

  it('prompt/completion rows, plain and conversational', async () => {
    const data = await loadSftData(fixture('sft-prompt-completion.jsonl'), { tokenizer: new FakeTokenizer() });
    expect(data.files[0].format).toBe('prompt_completion');
    expect(data.examples.map((e) => [e.prompt, e.completion])).toEqual([
      ["Translate 'chat':", ' cat'],
      ['<|user|>\nHi<|end|>\n<|assistant|>\n', 'Hello!<|end|>\n'],
    ]);
  });

  it('messages rows render the whole conversation', async () => {
    const data = await loadSftData(fixture('sft-messages.jsonl'), { tokenizer: new FakeTokenizer() });
    expect(data.files[0].format).toBe('messages');
    expect(data.examples.map((e) => [e.prompt, e.completion])).toEqual([['', '<|user|>\nHi<|end|>\n<|assistant|>\nHello!<|end|>\n']]);
  });

  it('bad SFT rows are reported', () => {
    const data = sftExamplesFromRows([{ text: '' }, { text: 3 }, { text: 'ok' }], { onBadRow: 'skip' });
    expect(data.badRows.map((b) => b.reason)).toEqual(["empty field 'text'", "field 'text' must be a string, got number"]);
    expect(data.examples).toHaveLength(1);
  });
});
