import type { TextTokenizer } from '../io/tokenizer-types.js';
import { renderConversation, requireChatTemplate } from './chat.js';
import { asRecord, hasField, looksLikeMessages, messagesField, stringField } from './fields.js';
import { RowProblem } from './row-problem.js';
import type { RowOrigin, SftExample, SftFormat } from './types.js';

/** Every SFT format name. */
export const SFT_FORMATS: readonly SftFormat[] = ['text', 'prompt_completion', 'messages'];

/** The SFT format a row's fields suggest, or undefined when they fit none. */
export function detectSftFormat(value: unknown): SftFormat | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const row = value as Record<string, unknown>;
  if (hasField(row, 'messages')) return 'messages';
  if (hasField(row, 'prompt') && hasField(row, 'completion')) return 'prompt_completion';
  if (hasField(row, 'text')) return 'text';
  return undefined;
}

/**
 * Converts one raw row to an SftExample, throwing RowProblem when it is malformed. As in TRL's
 * SFTTrainer: `text` and `messages` rows are trained on every token (the whole rendered
 * conversation; prompt ''), `prompt_completion` rows on the completion only. Conversational
 * prompt/completion rows are rendered like preference rows ({@link renderConversation}).
 */
export function toSftExample(
  value: unknown,
  origin: RowOrigin,
  format: SftFormat,
  tokenizer: TextTokenizer | undefined,
): SftExample {
  const row = asRecord(value);
  const { prompt, completion, label, endsWithEndOfTurn } = convert(row, format, tokenizer);
  if (completion.length === 0) throw new RowProblem(`empty ${label}`);
  return endsWithEndOfTurn ? { prompt, completion, origin, endsWithEndOfTurn } : { prompt, completion, origin };
}

function convert(
  row: Record<string, unknown>,
  format: SftFormat,
  tokenizer: TextTokenizer | undefined,
): { prompt: string; completion: string; label: string; endsWithEndOfTurn?: boolean } {
  switch (format) {
    case 'text':
      return { prompt: '', completion: stringField(row, 'text'), label: "field 'text'" };
    case 'messages': {
      const rendered = renderConversation(requireChatTemplate(tokenizer), [], [messagesField(row, 'messages')]);
      return { prompt: '', completion: rendered.completions[0], label: 'conversation', endsWithEndOfTurn: rendered.endsWithEndOfTurn };
    }
    case 'prompt_completion': {
      if (looksLikeMessages(row.prompt) || looksLikeMessages(row.completion)) {
        const rendered = renderConversation(
          requireChatTemplate(tokenizer),
          messagesField(row, 'prompt'),
          [messagesField(row, 'completion')],
        );
        return { prompt: rendered.prompt, completion: rendered.completions[0], label: 'completion', endsWithEndOfTurn: rendered.endsWithEndOfTurn };
      }
      return { prompt: stringField(row, 'prompt'), completion: stringField(row, 'completion'), label: 'completion' };
    }
  }
}
