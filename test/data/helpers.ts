import { fileURLToPath } from 'node:url';
import type { ChatMessage, TextTokenizer } from '../../src/io/tokenizer-types.js';

/** Absolute path of a file under test/fixtures/data. */
export function fixture(name: string): string {
  return fileURLToPath(new URL(`../fixtures/data/${name}`, import.meta.url));
}

export const PAD = 0;
export const EOS = 1;
export const BOS = 2;

/**
 * A deterministic word-level tokenizer for tests, GPT-2-like in the way that matters here: a word
 * carries its leading space (" Paris"), so "…is " + "Paris" tokenizes differently from "…is" and
 * the prompt/prefix mismatch can be exercised. Chat markers `<|role|>` and `<s>` are single
 * tokens; `<s>` is the BOS token. Ids are handed out in order of first appearance, so the same
 * calls give the same ids.
 */
export class FakeTokenizer implements TextTokenizer {
  readonly eosTokenId = EOS;
  readonly padTokenId = PAD;
  readonly bosTokenId: number | undefined;
  readonly hasChatTemplate: boolean;
  private readonly ids = new Map<string, number>([
    ['<pad>', PAD],
    ['</s>', EOS],
    ['<s>', BOS],
  ]);
  private readonly pieces: string[] = ['<pad>', '</s>', '<s>'];
  private readonly templateBos: boolean;
  /** With `endOfTurn`, `<|end|>` closes each turn the way a real template's end-of-turn token does. */
  readonly chatEndOfTurn: { text: string; id: number } | undefined;

  constructor(options: { bos?: boolean; chatTemplate?: boolean; templateBos?: boolean; endOfTurn?: boolean } = {}) {
    this.bosTokenId = options.bos ? BOS : undefined;
    this.hasChatTemplate = options.chatTemplate ?? true;
    this.templateBos = options.templateBos ?? false;
    this.chatEndOfTurn = options.endOfTurn ? { text: '<|end|>', id: this.encode('<|end|>')[0] } : undefined;
  }

  get vocabSize(): number {
    return this.pieces.length;
  }

  /** The pieces `text` splits into. */
  split(text: string): string[] {
    return text.match(/<s>|<\/s>|<\|[a-z]+\|>| ?[^\s<]+|\s+|</g) ?? [];
  }

  encode(text: string): number[] {
    return this.split(text).map((piece) => {
      let id = this.ids.get(piece);
      if (id === undefined) {
        id = this.pieces.length;
        this.ids.set(piece, id);
        this.pieces.push(piece);
      }
      return id;
    });
  }

  decode(ids: readonly number[], skipSpecialTokens = false): string {
    return ids
      .filter((id) => !skipSpecialTokens || id > BOS)
      .map((id) => this.pieces[id] ?? '')
      .join('');
  }

  applyChatTemplate(messages: ChatMessage[], options: { addGenerationPrompt?: boolean } = {}): string {
    if (!this.hasChatTemplate) throw new Error('no chat template');
    for (const m of messages) if (m.role === 'tool') throw new Error('tool role not supported');
    const body = messages.map((m) => `<|${m.role}|>\n${m.content}<|end|>\n`).join('');
    return (this.templateBos ? '<s>' : '') + body + (options.addGenerationPrompt ? '<|assistant|>\n' : '');
  }
}
