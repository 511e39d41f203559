/** Defaults and conventions of text generation: EOS ids, transformers' defaults, prompt encoding. */
import { describe, expect, it } from 'vitest';
import { unescapeStop } from '../../src/cli/generate.js';
import { encodePrompt, resolveEosTokenIds, resolveSampling, truncatePromptIds } from '../../src/generate/text.js';
import { createModel } from '../../src/models/registry.js';
import type { TextTokenizer } from '../../src/io/tokenizer-types.js';

const model = createModel({ model_type: 'gpt2', vocab_size: 100, n_embd: 8, n_layer: 1, n_head: 2, n_positions: 32, eos_token_id: 99, bos_token_id: 98 });

function fakeTokenizer(bos: number | undefined, eos = 99): TextTokenizer {
  return {
    encode: (text: string) => [...text].map((c) => c.charCodeAt(0) % 90),
    decode: (ids: readonly number[]) => ids.map((i) => String.fromCharCode(i)).join(''),
    eosTokenId: eos,
    padTokenId: eos,
    bosTokenId: bos,
    vocabSize: 100,
    hasChatTemplate: false,
    applyChatTemplate: () => {
      throw new Error('none');
    },
  };
}

describe('text generation helpers', () => {
  it('EOS ids: generation_config (number or list), config.json and tokenizer, deduplicated and in range', () => {
    expect(resolveEosTokenIds(model, fakeTokenizer(undefined), { eos_token_id: [97, 99, 500] })).toEqual([97, 99]);
    expect(resolveEosTokenIds(model, fakeTokenizer(undefined, 96), undefined)).toEqual([99, 96]);
    expect(resolveEosTokenIds(model, undefined, { eos_token_id: 5 })).toEqual([5, 99]);
    const chat = { ...fakeTokenizer(undefined, 96), chatEndOfTurn: { text: '<|eot|>', id: 95 } };
    expect(resolveEosTokenIds(model, chat, undefined)).toEqual([99, 96, 95]);
  });

  it("sampling defaults: options, then generation_config.json, then transformers' defaults", () => {
    expect(resolveSampling({})).toEqual({ maxNewTokens: 64, doSample: false, temperature: 1, topK: 50, topP: 1 });
    const gc = { do_sample: true, temperature: 0.6, top_p: 0.9, top_k: null, max_new_tokens: 20 };
    expect(resolveSampling({ generationConfig: gc })).toEqual({ maxNewTokens: 20, doSample: true, temperature: 0.6, topK: 50, topP: 0.9 });
    expect(resolveSampling({ generationConfig: gc, temperature: 1.2, topK: 0, doSample: false })).toMatchObject({ temperature: 1.2, topK: 0, doSample: false });
  });

  it('prompts get the tokenizer BOS once; an empty prompt starts from BOS', () => {
    expect(encodePrompt(fakeTokenizer(50), model, 'ab')).toEqual([50, 7, 8]);
    expect(encodePrompt(fakeTokenizer(50), model, '\u0032b')).toEqual([50, 8]); // '2' encodes to 50 = BOS: not doubled
    expect(encodePrompt(fakeTokenizer(undefined), model, 'ab')).toEqual([7, 8]);
    expect(encodePrompt(fakeTokenizer(undefined), model, '')).toEqual([98]);
    const noBos = createModel({ model_type: 'gpt2', vocab_size: 100, n_embd: 8, n_layer: 1, n_head: 2, n_positions: 32 });
    expect(() => encodePrompt(fakeTokenizer(undefined), noBos, '')).toThrow(/BOS/);
  });

  it('left truncation keeps the BOS in front', () => {
    expect(truncatePromptIds([1, 2, 3, 4, 5], 3, undefined)).toEqual([3, 4, 5]);
    expect(truncatePromptIds([9, 2, 3, 4, 5], 3, 9)).toEqual([9, 4, 5]);
    expect(truncatePromptIds([9, 2], 3, 9)).toEqual([9, 2]);
    expect(() => truncatePromptIds([1], 0, undefined)).toThrow(/positive/);
  });

  it('--stop values are unescaped', () => {
    expect(unescapeStop('\\n\\nHuman:')).toBe('\n\nHuman:');
    expect(unescapeStop('a\\\\n\\tb')).toBe('a\\n\tb');
  });
});
