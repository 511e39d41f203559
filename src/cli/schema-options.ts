/**
 * A subcommand's flags, read off its config schema: one flag per key (nested objects such as
 * `lora` give `--lora-r`...), the value kind, choices and default from the key's zod type, the
 * help text and placeholder from its metadata (`option()` in train/config.ts). So a default, a
 * choice or a description is written once, in the library's schema.
 */
import type { z } from 'zod';
import type { OptionMeta } from '../train/core/config.js';
import type { OptionKind, OptionSpec } from './options.js';

/** The parts of a zod type's definition read here. */
interface Def {
  type: string;
  innerType?: z.ZodType;
  defaultValue?: unknown;
  element?: z.ZodType;
  options?: readonly z.ZodType[];
  entries?: Record<string, string>;
  shape?: Record<string, z.ZodType>;
  /** A pipe's (transform's) input type, and its output type (read through z.preprocess). */
  in?: z.ZodType;
  out?: z.ZodType;
}

const defOf = (t: z.ZodType): Def => (t as unknown as { def: Def }).def;

interface Unwrapped {
  type: z.ZodType;
  default?: unknown;
  meta?: OptionMeta;
}

/** Strips optional/default wrappers, keeping the default and the first metadata met. */
function unwrap(t: z.ZodType): Unwrapped {
  let meta = t.meta() as OptionMeta | undefined;
  let value: unknown;
  let cur = t;
  for (;;) {
    const d = defOf(cur);
    if (d.type === 'default') value = d.defaultValue;
    // A pipe reads as its input type; z.preprocess's input is a transform, so it reads as its output type.
    const pipeInner = d.type === 'pipe' ? (d.in && defOf(d.in).type === 'transform' ? d.out : d.in) : undefined;
    const inner = d.type === 'pipe' ? pipeInner : ['default', 'optional', 'nonoptional', 'prefault'].includes(d.type) ? d.innerType : undefined;
    if (!inner) break;
    cur = inner;
    meta ??= cur.meta() as OptionMeta | undefined;
  }
  return { type: cur, default: value, meta };
}

function enumValues(t: z.ZodType): string[] | undefined {
  const d = defOf(t);
  return d.type === 'enum' && d.entries ? Object.values(d.entries) : undefined;
}

function kindOf(t: z.ZodType, key: string): { kind: OptionKind; choices?: readonly string[] } {
  const d = defOf(t);
  switch (d.type) {
    case 'string':
      return { kind: 'string' };
    case 'number':
      return { kind: (t as z.ZodNumber).isInt ? 'integer' : 'number' };
    case 'boolean':
      return { kind: 'boolean' };
    case 'enum':
      return { kind: 'string', choices: enumValues(t) };
    case 'array':
      return { kind: defOf(unwrap(d.element as z.ZodType).type).type === 'number' ? 'numberList' : 'list' };
    case 'union': {
      const types = (d.options ?? []).map((o) => defOf(o).type);
      if (types.includes('boolean') && types.includes('string')) return { kind: 'optionalString' };
      if (types.includes('array')) return { kind: 'list' };
      break;
    }
  }
  throw new Error(`config key '${key}': no flag kind for a zod ${d.type}`);
}

function defaultText(value: unknown): string | undefined {
  if (value === undefined || value === false) return undefined;
  if (typeof value === 'number') return value !== 0 && Math.abs(value) < 1e-3 ? value.toExponential() : String(value);
  if (Array.isArray(value)) return value.join(',');
  return String(value);
}

function specOf(key: string, t: z.ZodType): OptionSpec[] {
  const u = unwrap(t);
  if (defOf(u.type).type === 'object') {
    return Object.entries(defOf(u.type).shape ?? {}).flatMap(([k, v]) => specOf(`${key}.${k}`, v));
  }
  if (!u.meta?.description) throw new Error(`config key '${key}' has no help text (train/config.ts option())`);
  const { kind, choices } = kindOf(u.type, key);
  const listChoices = kind === 'list' ? enumValues(unwrap(defOf(u.type).element ?? u.type).type) : undefined;
  return [
    {
      key,
      kind,
      description: listChoices ? `${u.meta.description}: ${listChoices.join(', ')}` : u.meta.description,
      ...(u.meta.arg ? { arg: u.meta.arg } : {}),
      ...(choices ? { choices } : {}),
      ...(kind === 'boolean' ? { negatable: true } : {}),
      ...(defaultText(u.default) !== undefined ? { defaultText: defaultText(u.default) } : {}),
    },
  ];
}

/** The flags of every key of `schema` (in the schema's order), except `omit`. */
export function optionsFromSchema(schema: z.ZodObject, omit: readonly string[] = []): OptionSpec[] {
  return Object.entries(schema.shape as Record<string, z.ZodType>)
    .filter(([k]) => !omit.includes(k))
    .flatMap(([k, t]) => specOf(k, t));
}

/** Keys whose config-file value may be a comma string instead of a list. */
export function listKeysOf(specs: readonly OptionSpec[]): string[] {
  return specs.filter((s) => s.kind === 'list').map((s) => s.key);
}
