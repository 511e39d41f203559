/**
 * KTO's data: unpaired rows (`prompt`, `completion`, `label` true/false; TRL's "unpaired
 * preference" format, conversational prompt/completion too), or any preference file, each pair
 * split into its chosen completion (label true) and its rejected one(s) (label false).
 */
import type { TextTokenizer } from '../io/tokenizer-types.js';
import { hasField } from './fields.js';
import { detectPreferenceFormat, PREFERENCE_FORMATS, toPreferenceExample } from './preference-format.js';
import { RowProblem } from './row-problem.js';
import { toSftExample } from './sft-format.js';
import type { PreferenceFormat, RowOrigin } from './types.js';

export type KtoFormat = 'unpaired' | PreferenceFormat;

export const KTO_FORMATS: readonly KtoFormat[] = ['unpaired', ...PREFERENCE_FORMATS];

/** One completion with its binary label: desirable (true) or undesirable (false). */
export interface KtoExample {
  prompt: string;
  completion: string;
  label: boolean;
  origin: RowOrigin;
  endsWithEndOfTurn?: boolean;
}

export function detectKtoFormat(value: unknown): KtoFormat | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const row = value as Record<string, unknown>;
  if (hasField(row, 'label') && hasField(row, 'completion')) return 'unpaired';
  return detectPreferenceFormat(value);
}

/** A row's examples: one for an unpaired row, one per completion for a preference row. */
export function toKtoExamples(value: unknown, origin: RowOrigin, format: KtoFormat, tokenizer: TextTokenizer | undefined): KtoExample[] {
  if (format === 'unpaired') {
    const label = (value as Record<string, unknown>).label;
    if (typeof label !== 'boolean') throw new RowProblem(`field 'label' must be true or false, got ${JSON.stringify(label)}`);
    const e = toSftExample(value, origin, 'prompt_completion', tokenizer);
    return [{ ...e, label }];
  }
  const e = toPreferenceExample(value, origin, format, tokenizer);
  const flag = e.endsWithEndOfTurn ? { endsWithEndOfTurn: true } : {};
  return e.completions.map((completion, k) => ({ prompt: e.prompt, completion, label: k === 0, origin, ...flag }));
}
