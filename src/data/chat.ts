import type { TextTokenizer } from '../io/tokenizer-types.js';
import type { ChatMessage } from './types.js';
import { RowProblem } from './row-problem.js';

/**
 * Renders a conversational prompt and its completions to text, as TRL's
 * `maybe_apply_chat_template`:
 * - the prompt is rendered with a generation prompt (unless it ends with an assistant message,
 *   which the completion continues; the tokenizer interface has no `continue_final_message`, so
 *   that case relies on the common-prefix step below);
 * - each completion is the text of rendering prompt + completion, after the rendered prompt;
 * - the prompt is first cut back to its common prefix with the best completion's rendering,
 *   because some templates (DeepSeek-R1) add text with the generation prompt that the full
 *   rendering lacks. TRL does not check the other completions; here a completion whose rendering
 *   does not start with the prompt makes the row bad instead of silently misaligning it;
 * - unlike TRL, each completion ends with the template's end-of-turn token
 *   (`tokenizer.chatEndOfTurn`): what the template writes after the last one (ChatML's and
 *   Gemma's newline, the assistant header early Llama 3 templates always append) is not part of
 *   the completion, and `endsWithEndOfTurn` tells tokenization to append no EOS (TRL appends one,
 *   which trains `<|im_end|>\n<|im_end|>` and `<|eot_id|><|end_of_text|>`). A template with no
 *   end-of-turn token keeps its whole rendering and gets the EOS appended, like plain text.
 */
export function renderConversation(
  tokenizer: TextTokenizer,
  prompt: ChatMessage[],
  completions: ChatMessage[][],
): { prompt: string; completions: string[]; endsWithEndOfTurn: boolean } {
  const last = prompt[prompt.length - 1];
  let promptText = prompt.length === 0 ? '' : render(tokenizer, prompt, last.role !== 'assistant');
  const full = completions.map((c) => render(tokenizer, [...prompt, ...c], false));
  promptText = promptText.slice(0, commonPrefixLength(promptText, full[0]));
  const texts = full.map((text, k) => {
    if (!text.startsWith(promptText)) {
      throw new RowProblem(`chat template renders the prompt differently before completion ${k}`);
    }
    return text.slice(promptText.length);
  });
  const eot = tokenizer.chatEndOfTurn?.text;
  const ends = eot === undefined ? [] : texts.map((text) => text.lastIndexOf(eot));
  if (eot === undefined || ends.some((at) => at < 0)) return { prompt: promptText, completions: texts, endsWithEndOfTurn: false };
  const closed = texts.map((text, k) => text.slice(0, ends[k] + eot.length));
  return { prompt: promptText, completions: closed, endsWithEndOfTurn: true };
}

function render(tokenizer: TextTokenizer, messages: ChatMessage[], addGenerationPrompt: boolean): string {
  try {
    return tokenizer.applyChatTemplate(messages, { addGenerationPrompt });
  } catch (err) {
    // Templates raise for data they reject (e.g. "roles must alternate"): a problem of this row.
    throw new RowProblem(`chat template failed: ${(err as Error).message}`);
  }
}

function commonPrefixLength(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

/** `tokenizer`, checked to have a chat template (conversational rows cannot be rendered otherwise). */
export function requireChatTemplate(tokenizer: TextTokenizer | undefined): TextTokenizer {
  if (!tokenizer || !tokenizer.hasChatTemplate) {
    throw new RowProblem('conversational row needs a tokenizer with a chat template');
  }
  return tokenizer;
}
