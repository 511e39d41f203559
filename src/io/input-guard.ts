/**
 * Never delete an input: before a command clears or replaces paths (an earlier run's results,
 * checkpoints, metrics), every input it reads (model, reference, prompts, data) is checked against
 * them, so that `--model <out>/runs/dpo` into `<out>` fails in the first second with a clear line
 * instead of deleting the model and then failing "model folder does not exist".
 */
import { realpath } from 'node:fs/promises';
import { resolve, sep } from 'node:path';
import { DpoError } from '../errors.js';

/** One input of a command: what the user calls it (`--model`) and its path (hub ids are skipped). */
export interface NamedInput {
  flag: string;
  path: string | undefined;
}

async function canonical(path: string): Promise<string> {
  return realpath(path).catch(() => resolve(path));
}

function within(path: string, folder: string): boolean {
  return path === folder || path.startsWith(folder.endsWith(sep) ? folder : folder + sep);
}

/**
 * Throws when an input lies in (or is) one of the paths about to be cleared; `what` says what
 * clearing them is (e.g. "replacing the results of an earlier experiment run in out/").
 */
export async function refuseClearingInputs(cleared: readonly string[], inputs: readonly NamedInput[], what: string): Promise<void> {
  if (cleared.length === 0) return;
  const targets = await Promise.all(cleared.map(canonical));
  for (const input of inputs) {
    if (input.path === undefined) continue;
    const path = await canonical(input.path);
    const hit = targets.find((t) => within(path, t));
    if (hit) {
      throw new DpoError(`${input.flag} ${input.path} lies in ${hit}, which ${what} would delete; copy it elsewhere first, or give another --output`);
    }
  }
}
