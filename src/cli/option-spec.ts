/** What a flag is, as the CLI's option plumbing (options.ts) and help (help-groups.ts) read it. */
import type { OptionGroup } from '../config/option.js';

/**
 * What kind of value a flag takes, and so how its argument is parsed. 'list' is one comma string,
 * 'variadic' several arguments (`--stop a b`), 'repeatable' one value per use of the flag
 * (`--pairs a --pairs b`), 'enable' a flag that turns an optional nested
 * object (lora) on with its defaults.
 */
export type OptionKind = 'string' | 'number' | 'integer' | 'boolean' | 'list' | 'numberList' | 'optionalString' | 'variadic' | 'repeatable' | 'enable';

/** A bound of a number flag (from its zod checks). */
export interface Bound {
  value: number;
  inclusive: boolean;
}

/** One flag of a subcommand, bound to a config key (dotted for nested keys: `lora.r`). */
export interface OptionSpec {
  /** Config key, camelCase; `lora.r` for a nested one. */
  key: string;
  /** Long flag without dashes (default: the key in kebab-case, dots as dashes). */
  flag?: string;
  /** Argument name shown in help (default by kind). */
  arg?: string;
  kind: OptionKind;
  description: string;
  choices?: readonly string[];
  /** Also add `--no-<flag>` (booleans a config file may have set). */
  negatable?: boolean;
  /** Shown as "(default: ...)" in help; the library applies the real default. */
  defaultText?: string;
  /** Bounds of a number / integer flag (of each number of a numberList): a value outside is refused naming the flag and the value. */
  min?: Bound;
  max?: Bound;
  /** A numberList of integers. */
  integers?: boolean;
  /** Help group (none: the general options at the top). */
  group?: OptionGroup;
  /** No default: the command needs it (from the flag or a config file); marked in help. */
  required?: boolean;
}
