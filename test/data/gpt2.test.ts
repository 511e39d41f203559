import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encode as referenceEncode } from 'gpt-3-encoder';
import { beforeAll, describe, expect, it } from 'vitest';
import { collatePreferences, preparePreferenceData, tokenizePreferences } from '../../src/data/index.js';
import { loadTokenizer, type HfTokenizer } from '../../src/io/tokenizer.js';
import { fixture } from './helpers.js';

const GPT2_DIR = join(dirname(fileURLToPath(import.meta.url)), '../fixtures/tokenizers/gpt2');
const GPT2_EOS = 50256;

describe('data pipeline with the real GPT-2 tokenizer', () => {
  let tok: HfTokenizer;
  beforeAll(async () => {
    tok = await loadTokenizer(GPT2_DIR);
  });

  it('file -> ids -> batch matches an independent GPT-2 encoder', async () => {
    const data = await preparePreferenceData(fixture('pairs.jsonl'), tok);
    expect(data.stats).toMatchObject({ rows: 3, promptNotPrefix: 0, droppedTooLong: 0, skippedBad: 0 });
    const [row] = data.rows;
    expect(row.promptIds).toEqual(referenceEncode('The capital of France is'));
    expect(row.completionIds).toEqual([
      [...referenceEncode(' Paris.'), GPT2_EOS],
      [...referenceEncode(' Lyon.'), GPT2_EOS],
    ]);
    const batch = collatePreferences(data.rows, { padTokenId: tok.padTokenId });
    const T = batch.seqLen;
    const scored = Array.from(batch.labels.slice(0, T)).filter((_, t) => batch.lossMask[t] === 1).map(Number);
    expect(tok.decode(scored)).toBe(' Paris.<|endoftext|>');
  });

  it('Anthropic HH rows: prompt ends at the shared Assistant turn', async () => {
    const data = await preparePreferenceData(fixture('hh.jsonl'), tok);
    expect(tok.decode(data.rows[0].promptIds)).toBe('\n\nHuman: What is 2+2?\n\nAssistant:');
    expect(data.rows[0].completionIds[0]).toEqual([...referenceEncode(' 4.'), GPT2_EOS]);
  });

  it('a prompt ending in a space is counted and the sequence stays the real tokenization', () => {
    const origin = { file: 'mem', line: 0 };
    const { rows, stats } = tokenizePreferences([{ prompt: 'The answer is ', completions: ['yes', 'no'], origin }], tok);
    expect(stats.promptNotPrefix).toBe(1);
    expect([...rows[0].promptIds, ...rows[0].completionIds[0]]).toEqual([...referenceEncode('The answer is yes'), GPT2_EOS]);
  });
});
