/**
 * What every `dpo` subcommand gets: where to write, and the exit code to return. Subcommands live
 * in their own files (`src/cli/<name>.ts`), each exporting `register(program, ctx)`, and are
 * listed once in `commands.ts`.
 */
import type { Command } from 'commander';
import { createProgress, type ProgressReporter } from '../progress.js';

/** The streams a command writes to: results (JSON) on stdout, progress and messages on stderr. */
export interface CliStream {
  write(chunk: string): unknown;
  isTTY?: boolean;
}

export interface CliIO {
  stdout: CliStream;
  stderr: CliStream;
}

export interface CliContext {
  io: CliIO;
  /** What `main` returns once the command's action has finished (default 0). */
  exitCode: number;
  /** A progress reporter on stderr: a live bar on a terminal, plain lines otherwise. */
  progress(): ProgressReporter;
}

/** A subcommand module's entry point: adds its command (with options, help and action) to `program`. */
export type RegisterCommand = (program: Command, ctx: CliContext) => void;

export function createContext(io: CliIO): CliContext {
  return {
    io,
    exitCode: 0,
    progress: () => createProgress(io.stderr as NodeJS.WriteStream),
  };
}

/** Writes one JSON value as one line on stdout. */
export function printJson(ctx: CliContext, value: unknown): void {
  ctx.io.stdout.write(`${JSON.stringify(value)}\n`);
}
