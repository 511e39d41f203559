import type { ChatMessage } from './types.js';
import { RowProblem } from './row-problem.js';

/** A short name of a JSON value's type for messages ("array", "null", "number", ...). */
export function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}

export function asRecord(value: unknown): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new RowProblem(`row is not an object (got ${typeName(value)})`);
  }
  return value as Record<string, unknown>;
}

/** True when `row[name]` is present; null counts as absent (Parquet writes missing values as null). */
export function hasField(row: Record<string, unknown>, name: string): boolean {
  return row[name] !== undefined && row[name] !== null;
}

export function stringField(row: Record<string, unknown>, name: string): string {
  const value = row[name];
  if (value === undefined || value === null) throw new RowProblem(`missing field '${name}'`);
  if (typeof value !== 'string') throw new RowProblem(`field '${name}' must be a string, got ${typeName(value)}`);
  return value;
}

/** True when `value` looks like a list of chat messages (decides the conversational layout). */
export function looksLikeMessages(value: unknown): boolean {
  return Array.isArray(value) && value.length > 0 && typeof value[0] === 'object' && value[0] !== null && 'role' in value[0];
}

/** `value` checked as a list of `{role, content}` messages with string fields; `label` names it in errors. */
export function asMessages(value: unknown, label: string): ChatMessage[] {
  if (value === undefined || value === null) throw new RowProblem(`missing field '${label}'`);
  if (!Array.isArray(value)) throw new RowProblem(`field '${label}' must be a list of messages, got ${typeName(value)}`);
  if (value.length === 0) throw new RowProblem(`field '${label}' is an empty list of messages`);
  return value.map((m, i) => {
    if (typeof m !== 'object' || m === null || Array.isArray(m)) {
      throw new RowProblem(`${label}[${i}] must be a {role, content} message, got ${typeName(m)}`);
    }
    const { role, content } = m as Record<string, unknown>;
    if (typeof role !== 'string') throw new RowProblem(`${label}[${i}].role must be a string, got ${typeName(role)}`);
    if (typeof content !== 'string') {
      throw new RowProblem(`${label}[${i}].content must be a string, got ${typeName(content)}`);
    }
    return { role, content };
  });
}

export function messagesField(row: Record<string, unknown>, name: string): ChatMessage[] {
  return asMessages(row[name], name);
}
