/**
 * Option plumbing shared by subcommands: strict number parsing, comma lists, config files
 * (YAML/JSON, camelCase / kebab-case / snake_case keys), and turning flags + file into the
 * library's camelCase config with errors that name the flag or the file key.
 */
import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { Option, type Command } from 'commander';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { DpoError } from '../errors.js';
import { flagAliases, trlNamesOf } from './flag-aliases.js';
import { groupHeading, inHelpOrder } from './help-groups.js';
import type { OptionSpec } from './option-spec.js';

export type { Bound, OptionKind, OptionSpec } from './option-spec.js';

const NUMBER = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;

/** A number, written in full ("1e-5", "0.1", "3"); anything else is a DpoError naming `flag`. */
export function parseNumber(flag: string, value: string): number {
  const v = value.trim();
  if (!NUMBER.test(v)) throw new DpoError(`${flag}: expected a number, got '${value}'`);
  return Number(v);
}

export function parseInteger(flag: string, value: string): number {
  const n = NUMBER.test(value.trim()) ? Number(value.trim()) : NaN;
  if (!Number.isInteger(n)) throw new DpoError(`${flag}: expected an integer, got '${value}'`);
  return n;
}

/** "a,b, c" -> ["a", "b", "c"] (empty items dropped). */
/** An optional integer flag, at least `min`; undefined when the flag is absent. */
export function optionalInteger(value: string | undefined, flag: string, min: number): number | undefined {
  if (value === undefined) return undefined;
  const n = parseInteger(flag, value);
  if (n < min) throw new DpoError(`${flag}: expected an integer >= ${min}, got '${value}'`);
  return n;
}

/** An optional number flag that must pass `ok` (described by `what`); undefined when absent. */
export function optionalNumber(value: string | undefined, flag: string, ok: (n: number) => boolean, what: string): number | undefined {
  if (value === undefined) return undefined;
  const n = parseNumber(flag, value);
  if (!ok(n)) throw new DpoError(`${flag}: expected ${what}, got '${value}'`);
  return n;
}

export function parseList(value: string): string[] {
  return value.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
}

export function parseNumberList(flag: string, value: string): number[] {
  const items = parseList(value);
  if (items.length === 0) throw new DpoError(`${flag}: expected a comma-separated list of numbers, got '${value}'`);
  return items.map((s) => parseNumber(flag, s));
}

export function camelCase(key: string): string {
  return key.replace(/[-_]+([a-zA-Z0-9])/g, (_, c: string) => c.toUpperCase());
}

export function kebabCase(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/** 'an integer >= 1', 'a number in (0, 1]', 'integers >= 1' (a list)... */
function expected(spec: OptionSpec): string {
  const list = spec.kind === 'numberList';
  const what = spec.kind === 'integer' ? 'an integer' : list ? (spec.integers ? 'integers' : 'numbers') : 'a number';
  const { min, max } = spec;
  if (min && max) return `${what} in ${min.inclusive ? '[' : '('}${min.value}, ${max.value}${max.inclusive ? ']' : ')'}`;
  if (min) return `${what} ${min.inclusive ? '>=' : '>'} ${min.value}`;
  if (max) return `${what} ${max.inclusive ? '<=' : '<'} ${max.value}`;
  return what;
}

function inBounds(spec: OptionSpec, n: number): boolean {
  const { min, max } = spec;
  if (min && (min.inclusive ? n < min.value : n <= min.value)) return false;
  if (max && (max.inclusive ? n > max.value : n >= max.value)) return false;
  return true;
}

/** A number flag's parser: strict syntax, then the spec's bounds, naming `flag` and the value on error. */
function numberParser(spec: OptionSpec, flag: string): (v: string) => number {
  return (v: string) => {
    const n = spec.kind === 'integer' ? parseInteger(flag, v) : parseNumber(flag, v);
    if (!inBounds(spec, n)) throw new DpoError(`${flag}: expected ${expected(spec)}, got '${v}'`);
    return n;
  };
}

export function flagOf(spec: OptionSpec): string {
  return spec.flag ?? kebabCase(spec.key.replace(/\./g, '-'));
}

/** The schema (and its flags) each command's flags were made from, for the test that every flag has one. */
const FLAG_SOURCES = new WeakMap<Command, { schema: z.ZodObject; specs: readonly OptionSpec[] }>();

/** The schema `cmd`'s flags come from (undefined: a command without schema flags). */
export function flagSourceOf(cmd: Command): { schema: z.ZodObject; specs: readonly OptionSpec[] } | undefined {
  return FLAG_SOURCES.get(cmd);
}

/** Every name a spec's flag answers to (without dashes): the flag, its aliases and --no- form. */
export function flagNamesOf(spec: OptionSpec): string[] {
  return [...namesOf(spec).map((n) => n.name), ...(spec.negatable ? [`no-${flagOf(spec)}`] : [])];
}

/** One commander option for `spec` under the name `name` (the flag or one of its aliases). */
function commanderOption(spec: OptionSpec, name: string, description: string): Option {
  const flag = `--${name}`;
  const arg = spec.arg ?? (spec.kind === 'number' || spec.kind === 'integer' ? 'n' : spec.kind === 'list' || spec.kind === 'numberList' ? 'list' : 'value');
  const flags =
    spec.kind === 'boolean' || spec.kind === 'enable' ? flag : spec.kind === 'optionalString' ? `${flag} [${arg}]` : spec.kind === 'variadic' ? `${flag} <${arg}...>` : `${flag} <${arg}>`;
  const option = new Option(flags, description);
  if (spec.choices) option.choices(spec.choices);
  if (spec.kind === 'number' || spec.kind === 'integer') option.argParser(numberParser(spec, flag));
  if (spec.kind === 'list') option.argParser((v: string) => parseList(v));
  if (spec.kind === 'repeatable') option.argParser((v: string, previous: string[] | undefined) => [...(previous ?? []), v]);
  if (spec.kind === 'numberList') {
    option.argParser((v: string) => {
      const xs = parseNumberList(flag, v);
      if (xs.some((n) => !inBounds(spec, n) || (spec.integers && !Number.isInteger(n)))) throw new DpoError(`${flag}: expected ${expected(spec)}, got '${v}'`);
      return xs;
    });
  }
  return option;
}

/** A flag's help line: the description, then the TRL name, the default and whether it is required. */
function helpText(spec: OptionSpec): string {
  const trl = trlNamesOf(spec);
  return [
    spec.required ? '[required] ' : '',
    spec.description,
    trl.length ? ` (TRL: ${trl.map((n) => `--${n}`).join(', ')})` : '',
    spec.defaultText !== undefined ? ` (default: ${spec.defaultText})` : '',
  ].join('');
}

/** The help note under a command's flags: what help does not list one by one. */
function flagsNote(cmd: Command, specs: readonly OptionSpec[]): string {
  const example = specs.map(flagOf).find((f) => f.includes('-'));
  const lines: string[] = [];
  const trl = specs.some((s) => trlNamesOf(s).length > 0);
  if (example) lines.push(`Each flag also answers to its snake_case spelling (--${example.replace(/-/g, '_')})${trl ? ' and to the' : '.'}`);
  if (example && trl) lines.push('TRL / transformers name shown beside it.');
  if (specs.some((s) => s.negatable)) lines.push('A boolean flag --x has a --no-x form, to turn off the value of a config file.');
  if (specs.some((s) => s.required)) {
    const fromFile = cmd.options.some((o) => o.long === '--config');
    lines.push(fromFile ? '[required]: the command needs it, as a flag or as a key of the --config file.' : '[required]: the command needs it.');
  }
  return lines.length ? `\n${lines.join('\n')}` : '';
}

/**
 * Adds the flags of `specs` to `cmd`, grouped for help; numbers are parsed strictly and checked
 * against their bounds, naming the flag on error. Each flag also answers to its hidden aliases
 * (snake_case, TRL's names; flag-aliases.ts).
 */
export function addOptions(cmd: Command, specs: readonly OptionSpec[], schema?: z.ZodObject): void {
  if (schema) FLAG_SOURCES.set(cmd, { schema, specs });
  const taken = new Set([...cmd.options.map((o) => o.name()), ...specs.map(flagOf)]);
  for (const spec of inHelpOrder(specs)) {
    const name = flagOf(spec);
    // The library fills defaults; the flag itself has none, so that a config file's value is not overridden.
    const option = commanderOption(spec, name, helpText(spec));
    if (spec.group) option.helpGroup(groupHeading(spec.group, specs));
    cmd.addOption(option);
    // Listed once, in the note under the flags, rather than once per boolean.
    if (spec.negatable) {
      const off = new Option(`--no-${name}`, `turn --${name} off (e.g. over a config file)`).hideHelp();
      if (spec.group) off.helpGroup(groupHeading(spec.group, specs));
      cmd.addOption(off);
    }
    for (const alias of flagAliases(name, spec, taken)) {
      taken.add(alias);
      const hidden = commanderOption(spec, alias, `alias of --${name}`).hideHelp();
      // Grouped as its flag, so that hidden options do not decide where the general group sits.
      if (spec.group) hidden.helpGroup(groupHeading(spec.group, specs));
      cmd.addOption(hidden);
    }
  }
  cmd.addHelpText('after', flagsNote(cmd, specs));
}

/** The names a flag answers to (its own first) with the attribute commander stores each under. */
function namesOf(spec: OptionSpec): { name: string; attribute: string }[] {
  const name = flagOf(spec);
  // Commander camel-cases dashes only: --learning_rate is stored as 'learning_rate'.
  return [name, ...flagAliases(name, spec)].map((n) => ({ name: n, attribute: n.replace(/-([a-zA-Z0-9])/g, (_, c: string) => c.toUpperCase()) }));
}

/** The config values given as flags (only those on the command line), as a nested object. */
export function valuesFromFlags(opts: Record<string, unknown>, specs: readonly OptionSpec[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const spec of specs) {
    const given = namesOf(spec).filter((n) => opts[n.attribute] !== undefined);
    if (given.length > 1) throw new DpoError(`--${given.map((n) => n.name).join(' and --')} are the same option; give it once`);
    if (given.length === 0) continue;
    const v = opts[given[0].attribute];
    if (spec.kind === 'enable') {
      // --lora: the object with its defaults, unless a nested flag (--lora-r) fills it too.
      if (v === true && out[spec.key] === undefined) setPath(out, spec.key, {});
    } else setPath(out, spec.key, v);
  }
  return out;
}

function setPath(target: Record<string, unknown>, key: string, value: unknown): void {
  const parts = key.split('.');
  let t = target;
  for (const p of parts.slice(0, -1)) {
    if (typeof t[p] !== 'object' || t[p] === null) t[p] = {};
    t = t[p] as Record<string, unknown>;
  }
  t[parts[parts.length - 1]] = value;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * A config file's keys in camelCase (kebab-case and snake_case accepted, nested objects too), and
 * flat `loraR`-style keys folded into `lora`. Comma strings are accepted for list keys.
 */
export function normalizeConfigKeys(raw: Record<string, unknown>, listKeys: readonly string[] = [], aliases: Readonly<Record<string, string>> = {}): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const spellings: Record<string, string> = {};
  for (const [k, v] of Object.entries(raw)) {
    const key = aliases[camelCase(k)] ?? camelCase(k);
    const value = isPlainObject(v) ? normalizeConfigKeys(v, listKeys.filter((l) => l.startsWith(`${key}.`)).map((l) => l.slice(key.length + 1))) : v;
    const flat = /^lora([A-Z]\w*)$/.exec(key);
    if (flat) {
      const inner = flat[1][0].toLowerCase() + flat[1].slice(1);
      const lora = (isPlainObject(out.lora) ? out.lora : {}) as Record<string, unknown>;
      lora[inner] = inner === 'targetModules' && typeof value === 'string' && value !== 'all-linear' ? parseList(value) : value;
      out.lora = lora;
      continue;
    }
    // `lora: true` turns LoRA on with its defaults (as `--lora-r 8` would); `lora: false` leaves it off.
    if (key === 'lora' && typeof value === 'boolean') {
      if (value) out.lora = isPlainObject(out.lora) ? out.lora : {};
      spellings[key] = k;
      continue;
    }
    // Own keys only: 'constructor' or 'toString' are not "given twice" because every object inherits them.
    if (Object.hasOwn(out, key)) throw new DpoError(`config key '${k}' is given twice (as '${key}' in another spelling)`);
    Object.defineProperty(out, key, { value: listKeys.includes(key) && typeof value === 'string' ? parseList(value) : value, enumerable: true, writable: true, configurable: true });
    spellings[key] = k;
  }
  SPELLINGS.set(out, spellings);
  if (isPlainObject(out.lora) && typeof out.lora.targetModules === 'string' && out.lora.targetModules !== 'all-linear') {
    out.lora.targetModules = parseList(out.lora.targetModules);
  }
  return out;
}

/**
 * The TRL / transformers names of `specs`' top-level keys, camelCased, mapped to the key
 * (perDeviceTrainBatchSize -> batchSize): a TRL config file's keys read as ours.
 */
export function configKeyAliases(specs: readonly OptionSpec[]): Record<string, string> {
  return Object.fromEntries(specs.filter((s) => !s.key.includes('.')).flatMap((s) => trlNamesOf(s).map((n) => [camelCase(n), s.key])));
}

/** Reads a YAML (.yaml/.yml) or JSON config file into an object with camelCase keys (`aliases`: other names of keys). */
export async function loadConfigFile(path: string, listKeys: readonly string[] = [], aliases: Readonly<Record<string, string>> = {}): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new DpoError(`--config: cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  let value: unknown;
  try {
    value = extname(path).toLowerCase() === '.json' ? JSON.parse(text) : parseYaml(text);
  } catch (e) {
    throw new DpoError(`${path}: not valid ${extname(path).toLowerCase() === '.json' ? 'JSON' : 'YAML'}: ${(e as Error).message.split('\n')[0]}`);
  }
  if (value === null || value === undefined) return {};
  if (!isPlainObject(value)) throw new DpoError(`${path}: expected a mapping of option names to values`);
  return normalizeConfigKeys(value, listKeys, aliases);
}

/** Shallow merge, except nested objects (lora) which merge one level down; `over` wins. */
export function mergeConfig(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = isPlainObject(v) && isPlainObject(out[k]) ? { ...(out[k] as object), ...v } : v;
  SPELLINGS.set(out, { ...SPELLINGS.get(base), ...SPELLINGS.get(over) });
  return out;
}

/**
 * Validates merged flags + file values with `schema`; the first problem becomes one DpoError that
 * names the flag (when the value came from one) or the file and key.
 */
export function validateConfig<S extends z.ZodType>(
  schema: S,
  merged: Record<string, unknown>,
  fromFlags: Record<string, unknown>,
  specs: readonly OptionSpec[],
  file: string | undefined,
): z.output<S> {
  const r = schema.safeParse(merged);
  if (r.success) return r.data;
  // An unknown key (a typo) first: it usually explains the other problems. Every problem is told.
  const issues = [...r.error.issues.filter((i) => i.code === 'unrecognized_keys'), ...r.error.issues.filter((i) => i.code !== 'unrecognized_keys')];
  const flagFor = (p: string[]): string => {
    const key = p.filter((s) => !/^\d+$/.test(s)).join('.');
    const spec = specs.find((s) => s.key === key) ?? specs.find((s) => s.key === p[0]);
    return `--${spec ? flagOf(spec) : kebabCase(key.replace(/\./g, '-'))}`;
  };
  const missing = [...new Set(r.error.issues.map((i) => String(i.path[0] ?? '')).filter((k) => k && merged[k] === undefined))];
  const problems: string[] = [];
  for (const issue of issues) {
    const path = issue.path.map(String);
    if (issue.code === 'unrecognized_keys') {
      const keys = (issue as { keys: string[] }).keys;
      const where = path.length ? `${file ?? 'config'}: '${path.join('.')}'` : (file ?? 'config');
      const known = knownKeys(schema, path);
      const told = keys.map((k) => {
        const near = suggest(k, known);
        return `'${originalKey(merged, path, k)}'${near ? ` (did you mean '${near}'?)` : ''}`;
      });
      problems.push(`${where}: unknown option${keys.length > 1 ? 's' : ''} ${told.join(', ')}`);
      continue;
    }
    if (path[0] !== undefined && missing.includes(path[0])) continue;
    const inFlags = path[0] !== undefined && hasPath(fromFlags, path);
    const where = inFlags || !file ? flagFor(path) : `${file}: '${path.join('.')}'`;
    problems.push(`${where}: ${issue.message}`);
  }
  if (missing.length) {
    const flags = missing.map((k) => flagFor([k])).join(', ');
    const inFile = file ? ` (or ${missing.map((k) => `'${k}'`).join(', ')} in ${file})` : '';
    problems.push(`missing required option${missing.length > 1 ? 's' : ''} ${flags}${inFile}`);
  }
  if (problems.length === 1) throw new DpoError(problems[0]);
  // All in one file: name it once.
  const prefix = file ? `${file}: ` : undefined;
  if (prefix && problems.every((p) => p.startsWith(prefix))) throw new DpoError(`${file}: ${problems.length} problems: ${problems.map((p) => p.slice(prefix.length)).join('; ')}`);
  throw new DpoError(`${problems.length} problems: ${problems.join('; ')}`);
}

/** The keys a ZodObject schema (or the object at `path` inside it) accepts. */
function knownKeys(schema: z.ZodType, path: readonly string[]): string[] {
  let t: unknown = schema;
  for (const p of path) {
    const shape = unwrapObject(t)?.shape as Record<string, unknown> | undefined;
    t = shape?.[p];
  }
  const shape = unwrapObject(t)?.shape as Record<string, unknown> | undefined;
  return shape ? Object.keys(shape) : [];
}

function unwrapObject(t: unknown): { shape: unknown } | undefined {
  for (let i = 0; i < 6 && t; i++) {
    if (t instanceof z.ZodObject) return t as unknown as { shape: unknown };
    const def = (t as { def?: { innerType?: unknown; in?: unknown; options?: unknown[] } }).def;
    const next = def?.innerType ?? def?.in ?? def?.options?.find((o) => o instanceof z.ZodObject);
    if (!next) return undefined;
    t = next;
  }
  return undefined;
}

/** The closest known key (edit distance at most a third of its length, at least 2), if any. */
function suggest(key: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const k of known) {
    const d = editDistance(key.toLowerCase(), k.toLowerCase());
    if (d < bestD) [best, bestD] = [k, d];
  }
  return best !== undefined && bestD <= Math.max(2, Math.floor(key.length / 3)) ? best : undefined;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length];
}

/** The key as the user spelled it in the file (normalizeConfigKeys records it), else as given. */
function originalKey(merged: Record<string, unknown>, path: readonly string[], key: string): string {
  let t: unknown = merged;
  for (const p of path) t = isPlainObject(t) ? t[p] : undefined;
  return (isPlainObject(t) ? SPELLINGS.get(t)?.[key] : undefined) ?? key;
}

/** The spelling in the config file of each normalized key, per normalized object. */
const SPELLINGS = new WeakMap<object, Record<string, string>>();

function hasPath(obj: Record<string, unknown>, path: readonly string[]): boolean {
  let t: unknown = obj;
  for (const p of path) {
    if (Array.isArray(t)) return true; // a list flag's element
    if (!isPlainObject(t) || t[p] === undefined) return false;
    t = t[p];
  }
  return true;
}
