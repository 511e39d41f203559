/** Tiny models and synthetic preference data for trainer tests, made in a temp folder. */
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng } from '../../src/data/rng.js';
import { createModel } from '../../src/models/registry.js';
import { savePretrained } from '../../src/models/pretrained.js';

export const GPT2_TOKENIZER = join(import.meta.dirname, '..', 'fixtures', 'tokenizers', 'gpt2');

export function tempDir(prefix = 'dpo-ts-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/**
 * A random GPT-2 with GPT-2's real tokenizer and a tiny body (fast to train on a CPU). With
 * `byteVocab`, GPT-2's tokenizer cut to its 256 byte tokens (no merges) and <|endoftext|>: a
 * vocabulary of 257 instead of 50257, so the embedding, checkpoints and tokenizer load are tiny.
 */
export async function makeTinyGpt2(dir: string, options: { embd?: number; layers?: number; seed?: number; dropout?: number; byteVocab?: boolean } = {}): Promise<string> {
  const eos = options.byteVocab ? 256 : 50256;
  const config = {
    model_type: 'gpt2',
    architectures: ['GPT2LMHeadModel'],
    vocab_size: eos + 1,
    n_embd: options.embd ?? 16,
    n_layer: options.layers ?? 1,
    n_head: 2,
    n_positions: 128,
    n_ctx: 128,
    activation_function: 'gelu_new',
    layer_norm_epsilon: 1e-5,
    bos_token_id: eos,
    eos_token_id: eos,
    embd_pdrop: options.dropout ?? 0,
    attn_pdrop: options.dropout ?? 0,
    resid_pdrop: options.dropout ?? 0,
  };
  const model = createModel(config);
  const rng = new Rng(options.seed ?? 1);
  const weights = new Map<string, Float32Array>();
  for (const p of model.parameters()) {
    const n = p.shape.reduce((a, b) => a * b, 1);
    const isNormWeight = /ln_\w+\.weight$/.test(p.name);
    const w = new Float32Array(n);
    for (let i = 0; i < n; i++) w[i] = isNormWeight ? 1 : /bias$/.test(p.name) ? 0 : (rng.nextFloat() - 0.5) * 0.04;
    weights.set(p.name, w);
  }
  await savePretrained(dir, { model, weights, config });
  if (options.byteVocab) writeByteTokenizer(dir);
  else {
    cpSync(join(GPT2_TOKENIZER, 'tokenizer.json'), join(dir, 'tokenizer.json'));
    cpSync(join(GPT2_TOKENIZER, 'tokenizer_config.json'), join(dir, 'tokenizer_config.json'));
  }
  return dir;
}

/** GPT-2's byte-level tokenizer without merges: ids 0-255 are the bytes, 256 is <|endoftext|>. */
function writeByteTokenizer(dir: string): void {
  const t = JSON.parse(readFileSync(join(GPT2_TOKENIZER, 'tokenizer.json'), 'utf8')) as { model: { vocab: Record<string, number>; merges: unknown[] }; added_tokens: { id: number }[] };
  const bytes = Object.entries(t.model.vocab).filter(([k]) => [...k].length === 1).sort((a, b) => a[1] - b[1]);
  t.model.vocab = Object.fromEntries([...bytes.map(([k], i) => [k, i] as const), ['<|endoftext|>', bytes.length]]);
  t.model.merges = [];
  for (const a of t.added_tokens) a.id = bytes.length;
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(t));
  const c = JSON.parse(readFileSync(join(GPT2_TOKENIZER, 'tokenizer_config.json'), 'utf8')) as { added_tokens_decoder: Record<string, unknown> };
  c.added_tokens_decoder = { [bytes.length]: c.added_tokens_decoder['50256'] };
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(c, null, 2));
}

const SUBJECTS = ['The movie', 'This book', 'The meal', 'Our trip', 'The song', 'That game', 'The show', 'My day'];
const GOOD = [' was wonderful and fun.', ' was great, I loved it.', ' was lovely and bright.'];
const BAD = [' was awful and dull.', ' was terrible, I hated it.', ' was boring and grim.'];

/** Prompt/chosen/rejected JSONL where chosen is always the positive ending. */
export function writeSentimentPairs(file: string, rows: number, seed: number): void {
  const rng = new Rng(seed);
  const pick = <T>(a: readonly T[]): T => a[Math.floor(rng.nextFloat() * a.length)];
  const lines: string[] = [];
  for (let i = 0; i < rows; i++) {
    lines.push(JSON.stringify({ prompt: `${pick(SUBJECTS)} ${i % 7}`, chosen: pick(GOOD), rejected: pick(BAD) }));
  }
  writeFileSync(file, `${lines.join('\n')}\n`);
}

/** The largest absolute difference between two sets of weights (same names and sizes). */
export function maxDiff(a: ReadonlyMap<string, Float32Array>, b: ReadonlyMap<string, Float32Array>): number {
  let worst = 0;
  for (const [name, x] of a) {
    const y = b.get(name) as Float32Array;
    for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(x[i] - y[i]));
  }
  return worst;
}
