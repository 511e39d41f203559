/**
 * Chat templates, found and rendered the way transformers' `apply_chat_template` does:
 * the template source comes from chat_template.jinja, tokenizer_config.json's `chat_template`
 * (a string or a list of {name, template}) or chat_template.json; it is rendered with the
 * special tokens as strings, `messages` and `add_generation_prompt`.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Template } from '@huggingface/jinja';
import { DpoError } from '../errors.js';
import { readJsonObject, type JsonObject } from './json-file.js';
import { rewriteStripCalls, STRIP_FUNCTIONS } from './jinja-strip.js';
import type { ChatMessage } from './tokenizer-types.js';

export interface ChatTemplateSource {
  /** Template source text. */
  template: string;
  /** Where it came from, for error messages. */
  origin: string;
}

function pickNamed(value: unknown, origin: string, name: string): string {
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) {
    const named = new Map<string, string>();
    for (const item of value) {
      const { name: n, template } = (item ?? {}) as { name?: unknown; template?: unknown };
      if (typeof n === 'string' && typeof template === 'string') named.set(n, template);
    }
    const picked = named.get(name);
    if (picked === undefined) {
      throw new DpoError(`${origin}: chat_template has no template named "${name}" (it has: ${[...named.keys()].join(', ')})`);
    }
    return picked;
  }
  throw new DpoError(`${origin}: chat_template is neither a string nor a list of {name, template}`);
}

/** The chat template of a tokenizer folder, or undefined when it has none. */
export async function findChatTemplate(
  dir: string,
  tokenizerConfig: JsonObject,
  name = 'default',
): Promise<ChatTemplateSource | undefined> {
  // transformers >= 4.43 saves the template as its own file, which then takes precedence.
  const jinjaPath = join(dir, 'chat_template.jinja');
  const jinja = await readFile(jinjaPath, 'utf-8').catch(() => undefined);
  if (jinja !== undefined) return { template: jinja, origin: jinjaPath };
  const configPath = join(dir, 'tokenizer_config.json');
  if (tokenizerConfig.chat_template !== undefined && tokenizerConfig.chat_template !== null) {
    return { template: pickNamed(tokenizerConfig.chat_template, configPath, name), origin: configPath };
  }
  const jsonPath = join(dir, 'chat_template.json');
  const json = await readJsonObject(jsonPath, true);
  if (json?.chat_template !== undefined) {
    return { template: pickNamed(json.chat_template, jsonPath, name), origin: jsonPath };
  }
  return undefined;
}

/** A parsed template, ready to render many conversations. */
export class ChatTemplate {
  private readonly compiled: Template;

  constructor(
    readonly source: ChatTemplateSource,
    /** bos_token, eos_token, ... as strings, passed to the template like transformers does. */
    private readonly specialTokens: Readonly<Record<string, string | string[]>>,
  ) {
    try {
      this.compiled = new Template(source.template);
      rewriteStripCalls(this.compiled);
    } catch (e) {
      throw new DpoError(`${source.origin}: cannot parse chat template (${(e as Error).message})`);
    }
  }

  render(messages: ChatMessage[], options: { addGenerationPrompt?: boolean; extra?: Record<string, unknown> } = {}): string {
    try {
      return this.compiled.render({
        ...STRIP_FUNCTIONS,
        ...this.specialTokens,
        ...options.extra,
        messages: messages.map((m) => ({ ...m })),
        add_generation_prompt: options.addGenerationPrompt ?? false,
      });
    } catch (e) {
      throw new DpoError(`${this.source.origin}: chat template failed: ${(e as Error).message}`);
    }
  }

  /**
   * The text the template writes right after an assistant message's content, up to whatever
   * follows in the rendering (`<|im_end|>\n`, `<end_of_turn>\n`, `<|eot_id|>` plus the generation
   * header some Llama 3 templates always append); undefined when the template cannot render a
   * user/assistant exchange or hides the content. The tokenizer reads its end-of-turn token here.
   */
  assistantTurnSuffix(): string | undefined {
    const probe = 'dpo-ts probe reply';
    let text: string;
    try {
      text = this.render([
        { role: 'user', content: 'dpo-ts probe question' },
        { role: 'assistant', content: probe },
      ]);
    } catch {
      return undefined;
    }
    const at = text.lastIndexOf(probe);
    return at < 0 ? undefined : text.slice(at + probe.length);
  }
}
