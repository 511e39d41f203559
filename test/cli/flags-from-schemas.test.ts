/**
 * Every command's flags come from a zod schema, and every key of that schema has a flag: walked
 * over the whole `dpo` command tree, so a new command or key without one fails here.
 */
import type { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { createContext } from '../../src/cli/context.js';
import { createProgram } from '../../src/cli/main.js';
import { flagNamesOf, flagSourceOf } from '../../src/cli/options.js';
import { TRAINER_COMMANDS } from '../../src/cli/trainers.js';

const program = createProgram(createContext({ stdout: { write: () => true }, stderr: { write: () => true } }));

/** Leaf commands with their path under `dpo` ('train', 'reward train', 'export onnx'). */
function leaves(cmd: Command, prefix = ''): [string, Command][] {
  return cmd.commands.flatMap((c) => {
    const path = `${prefix}${c.name()}`;
    return c.commands.length ? leaves(c, `${path} `) : [[path, c] as [string, Command]];
  });
}

/** Flags every command may have that are no config key. */
const GENERAL = new Set(['help', 'config', 'print-config']);
/** Config keys without a flag, by command: cacheDir is DPO's reference cache; eval's perExample is set by its --per-example FILE. */
const NO_FLAG: Record<string, string[]> = { sft: ['cacheDir'], cpo: ['cacheDir'], orpo: ['cacheDir'], 'reward train': ['cacheDir'], eval: ['perExample'] };
/** The CLI's own flags: eval --per-example names the output file of the library's perExample rows. */
const CLI_OWN: Record<string, string[]> = { eval: ['per-example'] };

/** A key's nested keys (lora.r...) when its type is an object. */
function nestedKeys(t: z.ZodType): string[] {
  let cur = t as unknown as { def: { type: string; innerType?: unknown; shape?: Record<string, unknown> } };
  while (['optional', 'default'].includes(cur.def.type)) cur = cur.def.innerType as typeof cur;
  return cur.def.type === 'object' ? Object.keys(cur.def.shape ?? {}) : [];
}

const commands = leaves(program);

describe('every command reads its flags from a schema', () => {
  it('walks all leaf commands, the trainers among them from one table', () => {
    const names = commands.map(([n]) => n);
    expect(names).toEqual(expect.arrayContaining(['train', 'eval', 'sft', 'cpo', 'orpo', 'kto', 'reward train', 'reward score', 'ppo', 'online', 'generate', 'evaluate', 'quickstart', 'export onnx', 'models', 'label', 'experiment sentiment']));
    const withConfigFile = commands.filter(([, c]) => c.options.some((o) => o.long === '--config')).map(([n]) => n);
    expect(withConfigFile.sort()).toEqual(TRAINER_COMMANDS.map((t) => t.label).sort());
  });

  it.each(commands)('dpo %s: each flag comes from its schema, each schema key has a flag', (name, cmd) => {
    const source = flagSourceOf(cmd);
    expect(source, `dpo ${name} declares flags outside a schema`).toBeDefined();
    const { schema, specs } = source as NonNullable<typeof source>;
    const shape = schema.shape as Record<string, z.ZodType>;
    const fromSpecs = new Set(specs.flatMap(flagNamesOf));
    const strays = cmd.options.map((o) => (o.long ?? '').replace(/^--/, '')).filter((f) => !GENERAL.has(f) && !fromSpecs.has(f) && !(CLI_OWN[name] ?? []).includes(f));
    expect(strays, `flags of dpo ${name} that no schema key gives`).toEqual([]);
    expect(specs.map((s) => s.key.split('.')[0]).filter((k) => !(k in shape)), `flags of dpo ${name} for keys its schema lacks`).toEqual([]);
    const specKeys = new Set(specs.map((s) => s.key));
    const missing = Object.entries(shape).flatMap(([k, t]) => {
      const nested = nestedKeys(t).map((n) => `${k}.${n}`);
      return [k, ...nested].filter((key) => (key === k && nested.length ? false : !specKeys.has(key)));
    });
    expect(missing, `keys of dpo ${name}'s schema without a flag`).toEqual(NO_FLAG[name] ?? []);
  });
});
