import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DpoError } from '../../src/errors.js';
import { ChatTemplate } from '../../src/io/chat-template.js';
import { loadTokenizer } from '../../src/io/tokenizer.js';

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '../fixtures/tokenizers');

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'dpo-tok-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/**
 * A byte-level tokenizer folder: GPT-2's vocabulary plus `extra` special tokens (ids 50257...),
 * the way Qwen2 and Llama-3 extend a byte-level BPE; `postProcessor` replaces GPT-2's.
 */
async function byteLevelFolder(name: string, extra: string[], postProcessor?: object): Promise<string> {
  const dir = await mkdtemp(join(root, `${name}-`));
  const json = JSON.parse(await readFile(join(FIXTURES, 'gpt2/tokenizer.json'), 'utf-8')) as {
    added_tokens: object[];
    post_processor: object;
  };
  extra.forEach((content, i) =>
    json.added_tokens.push({ id: 50257 + i, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }),
  );
  if (postProcessor) json.post_processor = postProcessor;
  await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(json));
  return dir;
}

describe('sentencepiece-style tokenizer (Metaspace, byte fallback, BOS)', () => {
  const dir = join(FIXTURES, 'llama-sp');

  it('encodes with Metaspace and byte fallback, decodes back', async () => {
    const tok = await loadTokenizer(dir);
    const id = (t: string) => tok.tokenToId(t)!;
    expect(tok.bosTokenId).toBe(1);
    expect(tok.eosTokenId).toBe(2);
    expect(tok.padTokenId).toBe(2); // pad_token null -> EOS
    expect(tok.encode('hello world')).toEqual([id('▁hello'), id('▁world')]);
    expect(tok.encodeWithSpecialTokens('hello world')).toEqual([1, id('▁hello'), id('▁world')]);
    expect(tok.encode('the thing')).toEqual([id('▁the'), id('▁t'), id('h'), id('ing')]);
    // "H" and the emoji are not pieces: they fall back to their UTF-8 bytes.
    const ids = tok.encode('Hi 😀');
    expect(ids).toEqual([id('▁'), id('<0x48>'), id('i'), id('▁'), id('<0xF0>'), id('<0x9F>'), id('<0x98>'), id('<0x80>')]);
    for (const s of ['hello world', 'Hi 😀', 'the  thing, ok?', 'naïve', 'x']) expect(tok.decode(tok.encode(s))).toBe(s);
    expect(tok.decode([1, ...tok.encode('hello'), 2], true)).toBe('hello');
    expect(tok.vocabSize).toBe(Object.keys(JSON.parse(await readFile(join(dir, 'tokenizer.json'), 'utf-8')).model.vocab).length);
  });

  it('renders a Mistral-style template with bos/eos and raise_exception', async () => {
    const tok = await loadTokenizer(dir);
    expect(tok.hasChatTemplate).toBe(true);
    const text = tok.applyChatTemplate([
      { role: 'user', content: 'hello' },
      { role: 'assistant', content: 'world' },
      { role: 'user', content: 'again' },
    ]);
    expect(text).toBe('<s>[INST] hello [/INST]world</s>[INST] again [/INST]');
    expect(tok.chatEndOfTurn).toEqual({ text: '</s>', id: 2 });
    const err = (() => {
      try {
        tok.applyChatTemplate([{ role: 'assistant', content: 'x' }]);
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(DpoError);
    expect((err as Error).message).toMatch(/tokenizer_config.json: chat template failed: .*Conversation roles must alternate/);
  });
});

describe('chat templates', () => {
  it("strip/lstrip/rstrip with an argument strip those characters, as Python's str methods", () => {
    // @huggingface/jinja alone strips whitespace whatever the argument (Qwen3: content.lstrip('\\n')).
    const template = new ChatTemplate(
      {
        template:
          "{% for m in messages %}[{{ m.content.lstrip('\\n') }}|{{ m.content.rstrip('\\n ') }}|{{ m.content.strip('\\n').strip() }}|{{ m.content.strip('x\\n').split('y')[0].lstrip() }}]{% endfor %}",
        origin: 'test',
      },
      {},
    );
    expect(template.render([{ role: 'user', content: '\n  a b \n\n' }])).toBe('[  a b \n\n|\n  a b|a b|a b ]');
    expect(template.render([{ role: 'user', content: 'x\nyx' }])).toBe('[x\nyx|x\nyx|x\nyx|]');
  });

  it('Qwen2-style: default system prompt, generation prompt, special tokens in text', async () => {
    const dir = await byteLevelFolder('qwen2', ['<|im_start|>', '<|im_end|>']);
    await copyFile(join(FIXTURES, 'chat-templates/qwen2/tokenizer_config.json'), join(dir, 'tokenizer_config.json'));
    const tok = await loadTokenizer(dir);
    expect(tok.eosTokenId).toBe(50258);
    expect(tok.padTokenId).toBe(50256);
    expect(tok.bosTokenId).toBeUndefined();
    const messages = [{ role: 'user', content: 'Hi' }];
    const prompt = tok.applyChatTemplate(messages, { addGenerationPrompt: true });
    expect(prompt).toBe(
      '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n',
    );
    expect(tok.applyChatTemplate(messages)).toBe(
      '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n',
    );
    const ids = tok.encode(prompt);
    expect(ids.filter((i) => i === 50257).length).toBe(3);
    expect(ids.filter((i) => i === 50258).length).toBe(2);
    expect(tok.decode(ids)).toBe(prompt);
    expect(tok.decode(ids, true)).toBe('system\nYou are a helpful assistant.\nuser\nHi\nassistant\n');
  });

  it('Llama-3-style: chat_template.jinja, bos_token from the config, BOS found from the post-processor', async () => {
    const specials = ['<|begin_of_text|>', '<|eot_id|>', '<|start_header_id|>', '<|end_header_id|>'];
    const dir = await byteLevelFolder('llama3', specials, {
      type: 'Sequence',
      processors: [
        { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
        {
          type: 'TemplateProcessing',
          single: [{ SpecialToken: { id: '<|begin_of_text|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
          pair: [],
          special_tokens: { '<|begin_of_text|>': { id: '<|begin_of_text|>', ids: [50257], tokens: ['<|begin_of_text|>'] } },
        },
      ],
    });
    await copyFile(join(FIXTURES, 'chat-templates/llama3/tokenizer_config.json'), join(dir, 'tokenizer_config.json'));
    await copyFile(join(FIXTURES, 'chat-templates/llama3/chat_template.jinja'), join(dir, 'chat_template.jinja'));
    const tok = await loadTokenizer(dir);
    expect(tok.bosTokenId).toBe(50257);
    expect(tok.eosTokenId).toBe(50258);
    expect(tok.encode('Hello')).toEqual([15496]);
    expect(tok.encodeWithSpecialTokens('Hello')).toEqual([50257, 15496]);
    const text = tok.applyChatTemplate(
      [
        { role: 'system', content: '  Be brief. ' },
        { role: 'user', content: 'Hi' },
      ],
      { addGenerationPrompt: true },
    );
    expect(text).toBe(
      '<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>' +
        '<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>' +
        '<|start_header_id|>assistant<|end_header_id|>\n\n',
    );
  });

  it('named template lists, configs naming tokens only by id in config.json, and errors', async () => {
    const dir = await mkdtemp(join(root, 'named-'));
    await copyFile(join(FIXTURES, 'llama-sp/tokenizer.json'), join(dir, 'tokenizer.json'));
    await writeFile(
      join(dir, 'tokenizer_config.json'),
      JSON.stringify({
        chat_template: [
          { name: 'default', template: '{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}{{ eos_token }}' },
          { name: 'tool_use', template: 'TOOLS {{ messages | length }}' },
        ],
      }),
    );
    await writeFile(join(dir, 'config.json'), JSON.stringify({ eos_token_id: [2, 7], bos_token_id: 1 }));
    const tok = await loadTokenizer(dir);
    expect(tok.eosTokenId).toBe(2);
    expect(tok.bosTokenId).toBe(1); // from the TemplateProcessing post-processor
    expect(tok.applyChatTemplate([{ role: 'user', content: 'a' }])).toBe('user: a\n</s>');
    const tools = await loadTokenizer(dir, { chatTemplateName: 'tool_use' });
    expect(tools.applyChatTemplate([{ role: 'user', content: 'a' }])).toBe('TOOLS 1');
    await expect(loadTokenizer(dir, { chatTemplateName: 'nope' })).rejects.toThrow(
      /chat_template has no template named "nope" \(it has: default, tool_use\)/,
    );

    await writeFile(join(dir, 'tokenizer_config.json'), JSON.stringify({ chat_template: '{% for %}' }));
    await expect(loadTokenizer(dir)).rejects.toThrow(/tokenizer_config.json: cannot parse chat template/);
    await writeFile(join(dir, 'config.json'), '{}');
    await writeFile(join(dir, 'tokenizer_config.json'), '{}');
    const json = JSON.parse(await readFile(join(dir, 'tokenizer.json'), 'utf-8'));
    json.added_tokens = [];
    await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(json));
    await expect(loadTokenizer(dir)).rejects.toThrow(/cannot tell the EOS token/);
    await expect(loadTokenizer(join(root, 'missing'))).rejects.toThrow(/no tokenizer.json/);
  });
});
