/**
 * Which strings are a tokenizer's BOS/EOS/PAD/UNK tokens, with transformers' precedence:
 * special_tokens_map.json overrides tokenizer_config.json; config.json (then
 * generation_config.json) supplies ids when the tokenizer files name no token (GPT-2's do not).
 */
import type { JsonObject } from './json-file.js';

export type SpecialTokenName = 'bos_token' | 'eos_token' | 'pad_token' | 'unk_token';

export const SPECIAL_TOKEN_NAMES: readonly SpecialTokenName[] = ['bos_token', 'eos_token', 'pad_token', 'unk_token'];

/** A token as tokenizer_config.json stores it: a string, an AddedToken dict, or null. */
export function tokenContent(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'object' && value !== null && typeof (value as { content?: unknown }).content === 'string') {
    return (value as { content: string }).content;
  }
  return undefined;
}

/** Special token strings by name, special_tokens_map.json winning over tokenizer_config.json. */
export function specialTokenStrings(
  tokenizerConfig: JsonObject,
  specialTokensMap: JsonObject | undefined,
): Partial<Record<SpecialTokenName, string>> {
  const out: Partial<Record<SpecialTokenName, string>> = {};
  for (const name of SPECIAL_TOKEN_NAMES) {
    const value = tokenContent(specialTokensMap?.[name]) ?? tokenContent(tokenizerConfig[name]);
    if (value !== undefined) out[name] = value;
  }
  return out;
}

/** additional_special_tokens as strings (same precedence). */
export function additionalSpecialTokens(tokenizerConfig: JsonObject, specialTokensMap: JsonObject | undefined): string[] {
  const list = specialTokensMap?.additional_special_tokens ?? tokenizerConfig.additional_special_tokens;
  if (!Array.isArray(list)) return [];
  return list.map(tokenContent).filter((t): t is string => t !== undefined);
}

/** A model config's `<name>_token_id`, which may be a single id or a list (first wins). */
export function configTokenId(config: JsonObject | undefined, key: string): number | undefined {
  const value = config?.[key];
  if (Number.isInteger(value)) return value as number;
  if (Array.isArray(value) && Number.isInteger(value[0])) return value[0] as number;
  return undefined;
}
