import type { TextTokenizer } from '../io/tokenizer-types.js';
import { renderConversation, requireChatTemplate } from './chat.js';
import { asMessages, asRecord, hasField, looksLikeMessages, messagesField, stringField, typeName } from './fields.js';
import { extractPromptMessages, extractPromptText, looksLikeHh, splitAnthropicHh } from './prompt.js';
import { RowProblem } from './row-problem.js';
import type { PreferenceExample, PreferenceFormat, RowOrigin } from './types.js';

/** Every preference format name, for option validation and help texts. */
export const PREFERENCE_FORMATS: readonly PreferenceFormat[] = [
  'prompt_chosen_rejected',
  'chosen_rejected',
  'conversational',
  'anthropic_hh',
  'ranking',
];

/** The preference format a row's fields suggest, or undefined when they fit none. */
export function detectPreferenceFormat(value: unknown): PreferenceFormat | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const row = value as Record<string, unknown>;
  if (hasField(row, 'completions')) return 'ranking';
  if (!hasField(row, 'chosen') || !hasField(row, 'rejected')) return undefined;
  if (looksLikeMessages(row.chosen) || looksLikeMessages(row.prompt)) return 'conversational';
  if (hasField(row, 'prompt')) return 'prompt_chosen_rejected';
  if (looksLikeHh(row.chosen)) return 'anthropic_hh';
  return 'chosen_rejected';
}

/**
 * Converts one raw row to a PreferenceExample in `format`, throwing RowProblem when the row is
 * malformed: missing or mistyped fields, an empty completion, identical completions, a ranking
 * with fewer than two completions. `tokenizer` renders conversational rows.
 */
export function toPreferenceExample(
  value: unknown,
  origin: RowOrigin,
  format: PreferenceFormat,
  tokenizer: TextTokenizer | undefined,
): PreferenceExample {
  const row = asRecord(value);
  const { prompt, completions, labels, endsWithEndOfTurn } = convert(row, format, tokenizer);
  checkCompletions(completions, labels);
  return endsWithEndOfTurn ? { prompt, completions, origin, endsWithEndOfTurn } : { prompt, completions, origin };
}

interface Converted {
  prompt: string;
  completions: string[];
  labels: string[];
  endsWithEndOfTurn?: boolean;
}

const PAIR_LABELS = ['chosen', 'rejected'];

function convert(row: Record<string, unknown>, format: PreferenceFormat, tokenizer: TextTokenizer | undefined): Converted {
  switch (format) {
    case 'prompt_chosen_rejected':
      return {
        prompt: stringField(row, 'prompt'),
        completions: [stringField(row, 'chosen'), stringField(row, 'rejected')],
        labels: PAIR_LABELS,
      };
    case 'chosen_rejected': {
      const split = extractPromptText(stringField(row, 'chosen'), stringField(row, 'rejected'));
      return { prompt: split.prompt, completions: [split.chosen, split.rejected], labels: PAIR_LABELS };
    }
    case 'anthropic_hh': {
      const split = splitAnthropicHh(stringField(row, 'chosen'), stringField(row, 'rejected'));
      return { prompt: split.prompt, completions: [split.chosen, split.rejected], labels: PAIR_LABELS };
    }
    case 'conversational': {
      const chosen = messagesField(row, 'chosen');
      const rejected = messagesField(row, 'rejected');
      const split = hasField(row, 'prompt')
        ? { prompt: messagesField(row, 'prompt'), chosen, rejected }
        : extractPromptMessages(chosen, rejected);
      const rendered = renderConversation(requireChatTemplate(tokenizer), split.prompt, [split.chosen, split.rejected]);
      return { ...rendered, labels: PAIR_LABELS };
    }
    case 'ranking':
      return convertRanking(row, tokenizer);
  }
}

function convertRanking(row: Record<string, unknown>, tokenizer: TextTokenizer | undefined): Converted {
  const list = row.completions;
  if (list === undefined || list === null) throw new RowProblem(`missing field 'completions'`);
  if (!Array.isArray(list)) throw new RowProblem(`field 'completions' must be an array, got ${typeName(list)}`);
  if (list.length < 2) throw new RowProblem(`a ranking needs at least 2 completions, got ${list.length}`);
  const labels = list.map((_, k) => `completions[${k}]`);
  if (looksLikeMessages(row.prompt) || looksLikeMessages(list[0])) {
    const prompt = messagesField(row, 'prompt');
    const completions = list.map((c, k) => asMessages(c, labels[k]));
    return { ...renderConversation(requireChatTemplate(tokenizer), prompt, completions), labels };
  }
  const completions = list.map((c, k) => {
    if (typeof c !== 'string') throw new RowProblem(`${labels[k]} must be a string, got ${typeName(c)}`);
    return c;
  });
  return { prompt: stringField(row, 'prompt'), completions, labels };
}

function checkCompletions(completions: string[], labels: string[]): void {
  completions.forEach((c, k) => {
    if (c.length === 0) throw new RowProblem(`empty completion '${labels[k]}'`);
  });
  for (let a = 0; a < completions.length; a++) {
    for (let b = a + 1; b < completions.length; b++) {
      if (completions[a] === completions[b]) {
        // Equal completions carry no preference; for pairs the loss would be constant.
        throw new RowProblem(`${labels[a]} and ${labels[b]} are identical`);
      }
    }
  }
}
