/**
 * Prompt files for generation: rows `{"prompt": "..."}`, or conversational
 * `{"prompt": [{role, content}, ...]}` / `{"messages": [...]}` rendered with the chat template
 * and its generation prompt. Read and validated like every other data file (JSONL/JSON/Parquet,
 * a file or a folder; bad rows reported as file:line: reason).
 */
import { badRowsError } from '../data/bad-rows.js';
import { DpoError } from '../errors.js';
import { requireChatTemplate } from '../data/chat.js';
import { asMessages, asRecord, hasField, typeName } from '../data/fields.js';
import { readDataPath } from '../data/read.js';
import { RowProblem } from '../data/row-problem.js';
import type { BadRow, ChatMessage, OnBadRow, RowOrigin } from '../data/types.js';
import type { TextTokenizer } from '../io/tokenizer-types.js';

export interface PromptRow {
  /** The text the model continues (conversations rendered with the chat template). */
  text: string;
  /** The prompt as the file gave it (a string or a message list), for writing results. */
  prompt: string | ChatMessage[];
  origin: RowOrigin;
}

export interface LoadedPrompts {
  prompts: PromptRow[];
  /** Rows skipped with onBadRow 'skip'. */
  skipped: BadRow[];
}

function renderMessages(tokenizer: TextTokenizer | undefined, messages: ChatMessage[], label: string): string {
  const last = messages[messages.length - 1];
  if (last.role === 'assistant') {
    throw new RowProblem(`${label} ends with an assistant message; a prompt to generate from ends with a user (or system) turn`);
  }
  const t = requireChatTemplate(tokenizer);
  try {
    return t.applyChatTemplate(messages, { addGenerationPrompt: true });
  } catch (err) {
    throw new RowProblem(`chat template failed: ${(err as Error).message}`);
  }
}

/** One row to a prompt; throws RowProblem for malformed rows. */
export function toPromptRow(value: unknown, origin: RowOrigin, tokenizer: TextTokenizer | undefined): PromptRow {
  const row = asRecord(value);
  if (hasField(row, 'prompt')) {
    const p = row.prompt;
    if (typeof p === 'string') return { text: p, prompt: p, origin };
    if (Array.isArray(p)) {
      const messages = asMessages(p, 'prompt');
      return { text: renderMessages(tokenizer, messages, 'prompt'), prompt: messages, origin };
    }
    throw new RowProblem(`field 'prompt' must be a string or a list of messages, got ${typeName(p)}`);
  }
  if (hasField(row, 'messages')) {
    const messages = asMessages(row.messages, 'messages');
    return { text: renderMessages(tokenizer, messages, 'messages'), prompt: messages, origin };
  }
  throw new RowProblem(`expected a 'prompt' (string or messages) or 'messages' field, found ${Object.keys(row).map((k) => `'${k}'`).join(', ') || 'no fields'}`);
}

/** A judge's view of a prompt: the text, or a conversation as "role: content" lines. */
export function promptQueryText(p: Pick<PromptRow, 'prompt'>): string {
  return typeof p.prompt === 'string' ? p.prompt : p.prompt.map((m) => `${m.role}: ${m.content}`).join('\n');
}

/**
 * Every prompt under `path` in file order. Malformed rows throw one DpoError listing them
 * (file:line: reason), or with `onBadRow: 'skip'` are left out and returned in `skipped`.
 */
export async function loadPrompts(path: string, tokenizer: TextTokenizer | undefined, options: { onBadRow?: OnBadRow } = {}): Promise<LoadedPrompts> {
  const prompts: PromptRow[] = [];
  const bad: BadRow[] = [];
  for (const file of await readDataPath(path)) {
    bad.push(...file.bad);
    for (const raw of file.rows) {
      try {
        prompts.push(toPromptRow(raw.value, raw.origin, tokenizer));
      } catch (err) {
        if (!(err instanceof RowProblem)) throw err;
        bad.push({ file: raw.origin.file, line: raw.origin.line, reason: err.message });
      }
    }
  }
  bad.sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : a.line - b.line));
  if (bad.length > 0 && (options.onBadRow ?? 'error') === 'error') throw badRowsError(bad);
  return { prompts, skipped: bad };
}

/**
 * A trainer's prompts: a path read with {@link loadPrompts} (skipped rows reported through `log`;
 * none left is an error naming `key`), or, in the library, the prompt strings themselves.
 */
export async function promptsFrom(source: string | readonly string[], tokenizer: TextTokenizer, key: string, log: (message: string) => void): Promise<PromptRow[]> {
  if (typeof source !== 'string') return source.map((text, i) => ({ text, prompt: text, origin: { file: key, line: i + 1 } }));
  const { prompts, skipped } = await loadPrompts(source, tokenizer);
  for (const bad of skipped) log(`skipped ${bad.file}:${bad.line}: ${bad.reason}`);
  if (prompts.length === 0) throw new DpoError(`${key} ${source}: no prompts`);
  return prompts;
}
