/**
 * A subcommand's flags, read off its config schema: one flag per key (nested objects such as
 * `lora` give `--lora-r`...), the value kind, choices and default from the key's zod type, the
 * help text and placeholder from its metadata (`option()` in train/config.ts). So a default, a
 * choice or a description is written once, in the library's schema.
 */
import type { z } from 'zod';
import { groupOfKey, type OptionMeta } from '../config/option.js';
import { validateConfig, valuesFromFlags, type Bound, type OptionKind, type OptionSpec } from './options.js';

/** The parts of a zod type's definition read here. */
interface Def {
  type: string;
  innerType?: z.ZodType;
  defaultValue?: unknown;
  checks?: readonly { _zod: { def: { check: string; value?: unknown; inclusive?: boolean } } }[];
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
  /** Wrapped in optional or default: the key may be left out. */
  optional: boolean;
}

/** Strips optional/default wrappers, keeping the default and the first metadata met. */
function unwrap(t: z.ZodType): Unwrapped {
  let meta = t.meta() as OptionMeta | undefined;
  let value: unknown;
  let optional = false;
  let cur = t;
  for (;;) {
    const d = defOf(cur);
    if (d.type === 'default') value = d.defaultValue;
    if (d.type === 'default' || d.type === 'optional' || d.type === 'prefault') optional = true;
    // A pipe reads as its input type; z.preprocess's input is a transform, so it reads as its output type.
    const pipeInner = d.type === 'pipe' ? (d.in && defOf(d.in).type === 'transform' ? d.out : d.in) : undefined;
    const inner = d.type === 'pipe' ? pipeInner : ['default', 'optional', 'nonoptional', 'prefault'].includes(d.type) ? d.innerType : undefined;
    if (!inner) break;
    cur = inner;
    meta ??= cur.meta() as OptionMeta | undefined;
  }
  return { type: cur, default: value, meta, optional };
}

/** A number's bounds, from its zod checks (an integer's exclusive bound becomes the next integer, inclusive). */
function boundsOf(t: z.ZodType, integer: boolean): { min?: Bound; max?: Bound } {
  const out: { min?: Bound; max?: Bound } = {};
  for (const c of defOf(t).checks ?? []) {
    const { check, value, inclusive } = c._zod.def;
    if (typeof value !== 'number') continue;
    const b: Bound = integer && !inclusive ? { value: check === 'greater_than' ? value + 1 : value - 1, inclusive: true } : { value, inclusive: inclusive ?? false };
    if (check === 'greater_than' && (out.min === undefined || b.value >= out.min.value)) out.min = b;
    if (check === 'less_than' && (out.max === undefined || b.value <= out.max.value)) out.max = b;
  }
  return out;
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
      // A data key (a path, or rows in memory in the library): a path on the command line.
      if (types.includes('string')) return { kind: 'string' };
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

function specOf(key: string, t: z.ZodType, parentGroup?: OptionMeta['group']): OptionSpec[] {
  const u = unwrap(t);
  const group = parentGroup ?? groupOfKey(key, u.meta);
  if (defOf(u.type).type === 'object') {
    const nested = Object.entries(defOf(u.type).shape ?? {}).flatMap(([k, v]) => specOf(`${key}.${k}`, v, group));
    // An optional object with help text (lora) also gets a flag that turns it on with its defaults.
    const enable: OptionSpec[] = u.optional && u.meta?.description ? [{ key, kind: 'enable', description: u.meta.description, group }] : [];
    return [...enable, ...nested];
  }
  if (!u.meta?.description) throw new Error(`config key '${key}' has no help text (config/option.ts option())`);
  const { kind: baseKind, choices } = kindOf(u.type, key);
  // A list whose placeholder ends in '...' takes several arguments (--stop a b) instead of a comma string.
  const kind: OptionKind = baseKind === 'list' && u.meta.repeat ? 'repeatable' : baseKind === 'list' && u.meta.arg?.endsWith('...') ? 'variadic' : baseKind;
  const listChoices = kind === 'list' ? enumValues(unwrap(defOf(u.type).element ?? u.type).type) : undefined;
  const shownDefault = defaultText(u.default) ?? (u.default === undefined ? u.meta.defaultText : undefined);
  const element = kind === 'numberList' ? unwrap(defOf(u.type).element as z.ZodType).type : undefined;
  const elementInteger = element !== undefined && (element as z.ZodNumber).isInt === true;
  const bounds = kind === 'number' || kind === 'integer' ? boundsOf(u.type, kind === 'integer') : element ? boundsOf(element, elementInteger) : {};
  return [
    {
      key,
      kind,
      description: listChoices ? `${u.meta.description}: ${listChoices.join(', ')}` : u.meta.description,
      ...(u.meta.arg ? { arg: u.meta.arg.replace(/\.\.\.$/, '') } : {}),
      ...(choices ? { choices } : {}),
      ...(kind === 'boolean' ? { negatable: true } : {}),
      ...(shownDefault !== undefined ? { defaultText: shownDefault } : {}),
      ...bounds,
      ...(elementInteger ? { integers: true } : {}),
      group,
      ...(!u.optional && !key.includes('.') ? { required: true } : {}),
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

/** A command's parsed flags as its schema's output: flags given, the schema's defaults, one error naming the flag. */
export function configFromFlags<S extends z.ZodObject>(schema: S, specs: readonly OptionSpec[], opts: Record<string, unknown>): z.output<S> {
  const fromFlags = valuesFromFlags(opts, specs);
  return validateConfig(schema, fromFlags, fromFlags, specs, undefined);
}
