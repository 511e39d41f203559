/**
 * Guarding a run's --output before any work is done (loading, tokenizing, reference pass), so that
 * a user's files are never clobbered and a doomed run fails in the first second:
 * - `--output` may never be the model (or reference model) folder;
 * - a folder that is not empty must be a dpo-ts run of the same command (its `dpo-ts-run.json`, or
 *   metrics.jsonl / checkpoints of a run from before that file existed), unless
 *   `overwriteOutput` (transformers' overwrite_output_dir) says to write into it anyway;
 * - the folder must be writable: the run lock (run-lock.ts) is taken in it, one run per folder;
 * - `--resume` needs a checkpoint made with the same options (compared by digest here; its files
 *   are verified when it is loaded).
 * A trainer calls {@link guardOutput} first and releases the lock when it is done; the PPO and
 * other trainers use the same call.
 */
import { realpath, readdir, readFile, rm, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { DpoError } from '../../errors.js';
import type { NamedInput } from '../../io/input-guard.js';
import { writeBytesAtomic } from '../../io/atomic.js';
import { ensureFolder } from '../../io/hf-folder-save.js';
import { acquireRunLock, RUN_LOCK_FILE } from '../../io/run-lock.js';
import { listCheckpoints } from './checkpoint.js';
import { setAsideEarlierRun, tidyCheckpoints } from './run-history.js';

/** The file that marks a folder as the output of a dpo-ts run, and of which command. */
export const RUN_MARKER_FILE = 'dpo-ts-run.json';

export interface OutputGuardOptions {
  output: string;
  /** The model being trained (a folder or hub id): never overwritten. */
  model: string;
  /** Other model folders the run reads (reference, reward model): never overwritten either. */
  inputs?: readonly (string | undefined)[];
  /** Input files (data, prompts) by flag: never deleted or moved by the guard either. */
  files?: readonly NamedInput[];
  /** The command as the user typed it ('dpo train', 'dpo sft', 'dpo reward train'). */
  command: string;
  /** Write into a non-empty folder that is not a run of this command. */
  overwriteOutput?: boolean;
  /** Resume from the newest checkpoint (true) or the given one. */
  resume?: boolean | string;
  /** The digest a checkpoint must have been made with (runner.ts's resumeDigest). */
  digest: string;
  /** --save-total-limit: kept when tidying completes a checkpoint a killed save left whole. */
  saveTotalLimit?: number;
  /** The values behind `digest`, kept in the run marker so that a resume mismatch names the options that differ. */
  resumeOptions?: Record<string, unknown>;
  log: (message: string) => void;
}

async function canonical(path: string): Promise<string> {
  return realpath(path).catch(() => resolve(path));
}

interface RunMarker {
  command?: unknown;
  /** The resume options of the run that wrote it (runner.ts's resumeOptions). */
  options?: Record<string, unknown>;
}

async function readMarker(output: string): Promise<RunMarker | undefined> {
  try {
    return JSON.parse(await readFile(join(output, RUN_MARKER_FILE), 'utf8')) as RunMarker;
  } catch {
    return undefined;
  }
}

/** What an existing, non-empty output folder is: this command's run, another command's run, or something else. */
async function describeFolder(output: string, command: string): Promise<'same-run' | string> {
  const entries = (await readdir(output)).filter((n) => n !== RUN_LOCK_FILE);
  if (entries.length === 0) return 'same-run';
  const marker = await readMarker(output);
  if (marker) return marker.command === command ? 'same-run' : `holds a ${String(marker.command)} run, not a ${command} run`;
  // Runs from before the marker existed: their metrics and checkpoints.
  if (entries.includes('metrics.jsonl') && (await listCheckpoints(output)).length + entries.filter((n) => n === 'config.json' || n === 'adapter_config.json').length > 0) {
    return 'same-run';
  }
  const shown = entries.slice(0, 4).join(', ');
  return `is not empty (${shown}${entries.length > 4 ? `, and ${entries.length - 4} more` : ''}) and is not a dpo-ts ${command} run`;
}

/** Checks and locks `output` (see the module comment); resolves to the lock the caller releases. */
export async function guardOutput(o: OutputGuardOptions): Promise<GuardedOutput> {
  const output = resolve(o.output);
  const target = await canonical(output);
  for (const input of [o.model, ...(o.inputs ?? [])]) {
    if (input !== undefined && (await canonical(input)) === target) {
      throw new DpoError(`--output ${o.output} is the model folder ${input}: the run would overwrite its input; give another --output`);
    }
  }
  const info = await stat(output).catch(() => undefined);
  if (info && !info.isDirectory()) throw new DpoError(`--output ${o.output}: exists and is not a folder`);
  if (info) {
    const what = await describeFolder(output, o.command);
    if (what !== 'same-run' && !o.overwriteOutput) {
      throw new DpoError(`--output ${o.output} ${what}; give a new or empty folder, or --overwrite-output to write into it anyway`);
    }
    if (what !== 'same-run') o.log(`warning: --overwrite-output: writing into ${o.output}, which ${what}`);
  } else if (o.resume) {
    throw new DpoError(`resume: --output ${o.output} does not exist, so there is no checkpoint to resume from`);
  }
  const created = await ensureFolder(output);
  const lock = await acquireRunLock(output, o.command, o.log);
  const marker = join(output, RUN_MARKER_FILE);
  const hadMarker = (await stat(marker).catch(() => undefined)) !== undefined;
  /** Undoes what the guard wrote when the run fails before writing anything itself. */
  const release = async (failed: boolean): Promise<void> => {
    await lock.release();
    if (!failed) return;
    const left = await readdir(output).catch(() => [] as string[]);
    if (left.some((n) => n !== RUN_MARKER_FILE)) return;
    if (created) await rm(output, { recursive: true, force: true });
    else if (!hadMarker) await rm(marker, { force: true });
  };
  try {
    // (Not when resuming a named checkpoint: pruning could remove it.)
    await tidyCheckpoints(output, undefined, o.log, typeof o.resume === 'string' ? undefined : o.saveTotalLimit);
    if (o.resume) await checkResumable(o.output, o.resume, o.digest, (await readMarker(output))?.options, o.resumeOptions);
    else if (info) {
      const inputs = [{ flag: '--model', path: o.model }, ...(o.inputs ?? []).map((path) => ({ flag: 'input', path })), ...(o.files ?? [])];
      const moved = await setAsideEarlierRun(output, o.overwriteOutput === true, inputs);
      if (moved) o.log(moved);
    }
    const record = { command: o.command, started: new Date().toISOString(), pid: process.pid, options: o.resumeOptions };
    await writeBytesAtomic(marker, `${JSON.stringify(record, null, 2)}\n`);
  } catch (e) {
    await release(true);
    throw e;
  }
  return { file: lock.file, release: (failed = false) => release(failed) };
}

/** The run lock of a guarded output; `release(true)` after a failed run also removes what the guard wrote, if the run wrote nothing. */
export interface GuardedOutput {
  readonly file: string;
  release(failed?: boolean): Promise<void>;
}

/**
 * The checkpoint a resume would start from was made with the same options: read from its
 * trainer_state.json only (cheap); the loop verifies its files when it loads it.
 */
async function checkResumable(
  output: string,
  resume: boolean | string,
  digest: string,
  before: Record<string, unknown> | undefined,
  now: Record<string, unknown> | undefined,
): Promise<void> {
  const candidates = typeof resume === 'string' ? [resume] : (await listCheckpoints(output)).map((c) => c.dir);
  if (candidates.length === 0) throw new DpoError(`resume: no checkpoint-<step> folder in ${output} (--save-steps writes them)`);
  for (const dir of candidates) {
    let state: { configDigest?: unknown };
    try {
      state = JSON.parse(await readFile(join(dir, 'trainer_state.json'), 'utf8')) as { configDigest?: unknown };
    } catch (e) {
      if (typeof resume === 'string') throw new DpoError(`resume: checkpoint ${dir} cannot be read: ${(e as Error).message}`);
      continue; // damaged: the loop falls back past it and says so
    }
    if (state.configDigest !== digest) {
      throw new DpoError(`resume: ${dir} was made with different training options (${differences(before, now)}); only --max-steps / --num-epochs may change on resume`);
    }
    return;
  }
}

/** `learningRate 1e-3 -> 5e-4, seed 1 -> 2`, or the options that matter when the earlier values are unknown. */
function differences(before: Record<string, unknown> | undefined, now: Record<string, unknown> | undefined): string {
  const fallback = 'model, data, batch size, optimizer, learning rate and schedule, loss...';
  if (!before || !now) return fallback;
  const show = (v: unknown): string => (v === undefined ? 'unset' : JSON.stringify(v));
  const keys = [...new Set([...Object.keys(before), ...Object.keys(now)])].filter((k) => show(before[k]) !== show(now[k]));
  return keys.length ? keys.map((k) => `${k} ${show(before[k])} -> ${show(now[k])}`).join(', ') : fallback;
}
