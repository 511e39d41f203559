/**
 * A `TextTokenizer` over a Hugging Face tokenizer folder: tokenizer.json through
 * @huggingface/tokenizers, chat templates through @huggingface/jinja, special-token ids with
 * transformers' semantics.
 */
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { DpoError } from '../errors.js';
import { ChatTemplate, findChatTemplate } from './chat-template.js';
import { readJsonObject, type JsonObject } from './json-file.js';
import {
  additionalSpecialTokens,
  configTokenId,
  specialTokenStrings,
  type SpecialTokenName,
} from './special-tokens.js';
import type { ChatMessage, SpecialToken, TextTokenizer } from './tokenizer-types.js';

export type { ChatMessage, SpecialToken, TextTokenizer } from './tokenizer-types.js';

export interface LoadTokenizerOptions {
  /** Which template to use when tokenizer_config.json holds a list of named ones. */
  chatTemplateName?: string;
}

// Rust's serializer always writes these keys; @huggingface/tokenizers insists on them.
const REQUIRED_TOKENIZER_KEYS = ['normalizer', 'pre_tokenizer', 'post_processor', 'decoder'] as const;

/** A loaded tokenizer: the `TextTokenizer` contract plus lookups the data layer may want. */
export class HfTokenizer implements TextTokenizer {
  readonly vocabSize: number;

  constructor(
    private readonly tokenizer: Tokenizer,
    readonly dir: string,
    readonly eosTokenId: number,
    readonly padTokenId: number,
    readonly bosTokenId: number | undefined,
    /** Special token strings (bos_token, eos_token, ...) as the tokenizer files name them. */
    readonly specialTokens: Readonly<Partial<Record<SpecialTokenName, string>>>,
    readonly chatTemplate: ChatTemplate | undefined,
    readonly chatEndOfTurn: SpecialToken | undefined,
  ) {
    let max = -1;
    for (const id of tokenizer.get_vocab(true).values()) if (id > max) max = id;
    this.vocabSize = max + 1;
  }

  get hasChatTemplate(): boolean {
    return this.chatTemplate !== undefined;
  }

  encode(text: string): number[] {
    return this.tokenizer.encode(text, { add_special_tokens: false }).ids;
  }

  /** Ids with the special tokens the tokenizer's post-processor adds (BOS for Llama, ...). */
  encodeWithSpecialTokens(text: string): number[] {
    return this.tokenizer.encode(text, { add_special_tokens: true }).ids;
  }

  decode(ids: readonly number[], skipSpecialTokens = false): string {
    // @huggingface/tokenizers throws on an empty list and silently maps unknown ids to unk.
    if (ids.length === 0) return '';
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize || this.tokenizer.id_to_token(id) === undefined) {
        throw new DpoError(`${this.dir}: token id ${id} is not in the vocabulary (size ${this.vocabSize})`);
      }
    }
    return this.tokenizer.decode([...ids], { skip_special_tokens: skipSpecialTokens });
  }

  tokenToId(token: string): number | undefined {
    return this.tokenizer.token_to_id(token);
  }

  idToToken(id: number): string | undefined {
    return this.tokenizer.id_to_token(id);
  }

  applyChatTemplate(messages: ChatMessage[], options: { addGenerationPrompt?: boolean } = {}): string {
    if (!this.chatTemplate) {
      throw new DpoError(`${this.dir}: the tokenizer has no chat template (tokenizer_config.json has no "chat_template")`);
    }
    return this.chatTemplate.render(messages, options);
  }
}

function idOf(tokenizer: Tokenizer, token: string | undefined): number | undefined {
  return token === undefined ? undefined : tokenizer.token_to_id(token);
}

/**
 * The BOS id when the tokenizer puts one in front of every sequence. tokenizer_config.json's
 * `add_bos_token` decides when present (transformers rebuilds the post-processor from it);
 * otherwise whatever the post-processor prepends to a probe text is the BOS.
 */
function detectBos(tokenizer: Tokenizer, config: JsonObject, bosToken: string | undefined, modelConfig: JsonObject | undefined) {
  if (config.add_bos_token === false) return undefined;
  if (config.add_bos_token === true) return idOf(tokenizer, bosToken) ?? configTokenId(modelConfig, 'bos_token_id');
  const plain = tokenizer.encode('a', { add_special_tokens: false }).ids;
  const withSpecial = tokenizer.encode('a', { add_special_tokens: true }).ids;
  if (withSpecial.length > plain.length && withSpecial[0] !== plain[0]) return withSpecial[0];
  return undefined;
}

/** Ids of tokenizer.json's added tokens marked special (the ones a template's markup is made of). */
function specialAddedIds(tokenizerJson: JsonObject): Set<number> {
  const ids = new Set<number>();
  const added = Array.isArray(tokenizerJson.added_tokens) ? tokenizerJson.added_tokens : [];
  for (const t of added as { id?: unknown; special?: unknown }[]) {
    if (t?.special === true && Number.isInteger(t.id)) ids.add(t.id as number);
  }
  return ids;
}

/** The first special token the template writes after an assistant message's content. */
function findEndOfTurn(template: ChatTemplate, tokenizer: Tokenizer, special: ReadonlySet<number>): SpecialToken | undefined {
  const suffix = template.assistantTurnSuffix();
  if (!suffix) return undefined;
  const id = tokenizer.encode(suffix, { add_special_tokens: false }).ids.find((i: number) => special.has(i));
  const text = id === undefined ? undefined : tokenizer.id_to_token(id);
  return id === undefined || text === undefined ? undefined : { text, id };
}

/** Load tokenizer.json (+ tokenizer_config.json, special_tokens_map.json, config.json) from `dir`. */
export async function loadTokenizer(dir: string, options: LoadTokenizerOptions = {}): Promise<HfTokenizer> {
  const tokenizerPath = join(dir, 'tokenizer.json');
  const tokenizerJson = await readJsonObject(tokenizerPath, true);
  if (!tokenizerJson) {
    throw new DpoError(`${dir}: no tokenizer.json (dpo-ts needs the fast-tokenizer file; save it with transformers' tokenizer.save_pretrained)`);
  }
  const tokenizerConfig = (await readJsonObject(join(dir, 'tokenizer_config.json'), true)) ?? {};
  const specialMap = await readJsonObject(join(dir, 'special_tokens_map.json'), true);
  const modelConfig = await readJsonObject(join(dir, 'config.json'), true);
  const generationConfig = await readJsonObject(join(dir, 'generation_config.json'), true);

  const specials = specialTokenStrings(tokenizerConfig, specialMap);
  const additional = additionalSpecialTokens(tokenizerConfig, specialMap);
  const tokJson: JsonObject = { added_tokens: [], ...tokenizerJson };
  for (const key of REQUIRED_TOKENIZER_KEYS) if (!(key in tokJson)) tokJson[key] = null;
  let tokenizer: Tokenizer;
  try {
    tokenizer = new Tokenizer(tokJson, {
      ...tokenizerConfig,
      ...specials,
      additional_special_tokens: additional,
      // transformers >= 4.45 defaults this to false; keep decode(encode(x)) === x unless asked.
      clean_up_tokenization_spaces: tokenizerConfig.clean_up_tokenization_spaces === true,
    });
  } catch (e) {
    throw new DpoError(`${tokenizerPath}: cannot build the tokenizer (${(e as Error).message})`);
  }

  const eos =
    idOf(tokenizer, specials.eos_token) ??
    configTokenId(modelConfig, 'eos_token_id') ??
    configTokenId(generationConfig, 'eos_token_id');
  if (eos === undefined) {
    throw new DpoError(
      `${dir}: cannot tell the EOS token: tokenizer_config.json/special_tokens_map.json name no eos_token in the vocabulary and config.json has no eos_token_id`,
    );
  }
  const pad = idOf(tokenizer, specials.pad_token) ?? eos;
  const bos = detectBos(tokenizer, tokenizerConfig, specials.bos_token, modelConfig);

  // Templates see special tokens as strings; fill in EOS/BOS found through config.json ids.
  const templateTokens: Record<string, string | string[]> = { ...specials };
  templateTokens.eos_token ??= tokenizer.id_to_token(eos) ?? '';
  const bosId = bos ?? configTokenId(modelConfig, 'bos_token_id');
  if (templateTokens.bos_token === undefined && bosId !== undefined) templateTokens.bos_token = tokenizer.id_to_token(bosId) ?? '';
  if (additional.length > 0) templateTokens.additional_special_tokens = additional;
  const source = await findChatTemplate(dir, tokenizerConfig, options.chatTemplateName);
  const template = source ? new ChatTemplate(source, templateTokens) : undefined;
  const endOfTurn = template ? findEndOfTurn(template, tokenizer, specialAddedIds(tokJson)) : undefined;

  return new HfTokenizer(tokenizer, dir, eos, pad, bos, specials, template, endOfTurn);
}
