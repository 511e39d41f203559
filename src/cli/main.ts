/**
 * The `dpo` command line (bin/dpo.js calls `main`). A thin layer over the library: parses
 * flags and config files, calls it, prints results as JSON on stdout and progress on stderr.
 * Errors are one line `dpo: <message>` and exit code 1; `--debug` adds the stack trace.
 */
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { z } from 'zod';
import { printable } from '../errors.js';
import { formatZodError } from '../train/core/config.js';
import { COMMANDS } from './commands.js';
import { COMPILE_CACHE_ENV, compileCacheDir } from '../engine/compile-cache.js';
import { createContext, type CliContext, type CliIO } from './context.js';

export type { CliContext, CliIO, CliStream, RegisterCommand } from './context.js';

function packageVersion(): string {
  try {
    // src/cli/main.ts and dist/cli/main.js both sit two folders below package.json.
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
}

const EXAMPLES = `
Examples:
  $ dpo quickstart           DPO end to end on the shipped small model, in a few minutes
  $ dpo train --model ./gpt2 --data prefs.jsonl --output runs/gpt2-dpo --learning-rate 5e-6
  $ dpo train --config run.yaml --resume
  $ dpo eval --model runs/gpt2-dpo --ref-model ./gpt2 --data heldout.jsonl
  $ dpo models               the supported model types (config.json model_type) and what each supports
  $ dpo <command> --help     more options and examples for one command`;

export function createProgram(ctx: CliContext): Command {
  const program = new Command('dpo')
    .description('Direct Preference Optimization for causal language models on Node.js')
    .version(packageVersion(), '-V, --version', 'print the version')
    .option('--debug', 'print stack traces on errors')
    .option('--compile-cache', `keep ONNX Runtime's optimised models on disk and open them in later runs (same as ${COMPILE_CACHE_ENV}=on; can cost memory: see README)`)
    .option('--no-compile-cache', `compile every graph afresh, whatever ${COMPILE_CACHE_ENV} says (the default when it is unset)`)
    .addHelpText('after', EXAMPLES)
    .exitOverride()
    .configureOutput({
      writeOut: (s) => void ctx.io.stdout.write(s),
      writeErr: (s) => void ctx.io.stderr.write(s),
      outputError: (s, write) => write(`dpo: ${s.replace(/^error: /, '')}`),
    });
  for (const register of COMMANDS) register(program, ctx);
  return program;
}

function errorMessage(e: unknown): string {
  if (e instanceof z.ZodError) return formatZodError(e, 'config');
  if (e instanceof Error) return e.message || e.name;
  return String(e);
}

/** Runs `dpo` with `argv` (without node and script); resolves to the exit code. */
export async function main(argv: string[], io: CliIO = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  const ctx = createContext(io);
  const debug = argv.includes('--debug');
  // --compile-cache / --no-compile-cache: for this run only (main may run in a process that goes on);
  // --compile-cache keeps a folder that $DPO_TS_COMPILE_CACHE names.
  const savedCache = process.env[COMPILE_CACHE_ENV];
  if (argv.includes('--no-compile-cache')) process.env[COMPILE_CACHE_ENV] = 'off';
  else if (argv.includes('--compile-cache') && compileCacheDir() === undefined) process.env[COMPILE_CACHE_ENV] = 'on';
  try {
    await createProgram(ctx).parseAsync(argv, { from: 'user' });
    return ctx.exitCode;
  } catch (e) {
    // Help and --version end with exit code 0; usage errors were already printed by commander.
    if (e instanceof CommanderError) return e.exitCode;
    const message = printable(errorMessage(e));
    io.stderr.write(`dpo: ${message}\n`);
    if (debug && e instanceof Error && e.stack) io.stderr.write(`${e.stack}\n`);
    return 1;
  } finally {
    if (savedCache === undefined) delete process.env[COMPILE_CACHE_ENV];
    else process.env[COMPILE_CACHE_ENV] = savedCache;
  }
}
