/** A chat message as Hugging Face chat templates expect it. */
export interface ChatMessage {
  role: string;
  content: string;
}

/** A special token: its text and id. */
export interface SpecialToken {
  text: string;
  id: number;
}

/**
 * What the data pipeline needs from a tokenizer. Implemented in src/io/tokenizer.ts on top of
 * @huggingface/tokenizers (tokenizer.json) and @huggingface/jinja (chat templates).
 */
export interface TextTokenizer {
  /** Token ids of `text`, with no special tokens added (no BOS/EOS). */
  encode(text: string): number[];
  /** Text of `ids`; special tokens are dropped when `skipSpecialTokens` is true. */
  decode(ids: readonly number[], skipSpecialTokens?: boolean): string;
  /** Id appended to every completion; transformers' `eos_token_id`. */
  readonly eosTokenId: number;
  /** Id used to right-pad batches (falls back to EOS when the tokenizer defines no pad token). */
  readonly padTokenId: number;
  /** BOS id when the tokenizer prepends one to every sequence (Llama), else undefined. */
  readonly bosTokenId: number | undefined;
  readonly vocabSize: number;
  /** True when a chat template is available. */
  readonly hasChatTemplate: boolean;
  /**
   * The special token the chat template closes an assistant turn with (Llama 3 `<|eot_id|>`,
   * ChatML `<|im_end|>`, Gemma `<end_of_turn>`, Mistral `</s>`), read from the template itself;
   * undefined without a template or when the template writes none. Conversational completions end
   * with it instead of an appended EOS.
   */
  readonly chatEndOfTurn?: SpecialToken;
  /** Render messages with the tokenizer's chat template (throws when there is none). */
  applyChatTemplate(messages: ChatMessage[], options?: { addGenerationPrompt?: boolean }): string;
}
