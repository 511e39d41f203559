/**
 * What a run does with what an earlier run left in its output folder, so that retention
 * (--save-total-limit) and --resume only ever see this run's checkpoints:
 * - a fresh run (no --resume) moves the earlier run's checkpoints and metrics.jsonl into
 *   `earlier-runs/<time>/` (or deletes them with --overwrite-output), so they are neither pruned
 *   in its place nor resumed by mistake later;
 * - a resume from a checkpoint older than the newest moves the newer ones (an abandoned
 *   continuation, or damaged ones) aside too, and cuts metrics.jsonl back to the resumed step, so
 *   no step is logged twice;
 * - a save killed between pruning and its rename is completed, other partial saves are removed.
 */
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { refuseClearingInputs, type NamedInput } from '../../io/input-guard.js';
import { isRunning } from '../../io/run-lock.js';
import { listCheckpoints, pruneCheckpoints, saveTrainingCheckpoint, settlePartialCheckpoints, type CheckpointContents } from './checkpoint.js';

/** The folder inside a run's output that keeps what earlier runs left there. */
export const EARLIER_RUNS_DIR = 'earlier-runs';
const METRICS_FILE = 'metrics.jsonl';

function stamp(): string {
  return new Date().toISOString().replace(/[:.]/g, '-');
}

async function exists(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined)) !== undefined;
}

/** A new folder under `<output>/earlier-runs/` (named by the time, unique). */
export async function asideFolder(output: string): Promise<string> {
  const base = join(output, EARLIER_RUNS_DIR, stamp());
  let dir = base;
  for (let i = 2; await exists(dir); i++) dir = `${base}-${i}`;
  await mkdir(dir, { recursive: true });
  return dir;
}

/**
 * Before a fresh (not resumed) run writes into `output`: moves (or with `remove`, deletes) the
 * checkpoints and metrics.jsonl an earlier run left there. Resolves to what was done, for the log.
 */
export async function setAsideEarlierRun(output: string, remove: boolean, inputs: readonly NamedInput[] = []): Promise<string | undefined> {
  const checkpoints = (await listCheckpoints(output)).map((c) => c.dir);
  const metrics = join(output, METRICS_FILE);
  const paths = [...checkpoints, ...((await exists(metrics)) ? [metrics] : [])];
  if (checkpoints.length === 0) return undefined; // metrics alone: the run rewrites them, as it does the model
  // Moved aside is not deleted, but the run would not find its input where the user said it is.
  await refuseClearingInputs(paths, inputs, `${remove ? 'deleting' : 'moving aside'} the earlier run's checkpoints in ${output}`);
  if (remove) {
    for (const p of paths) await rm(p, { recursive: true, force: true });
    return `--overwrite-output: removed the ${checkpoints.length} checkpoint(s) and metrics of an earlier run in ${output}`;
  }
  const dir = await asideFolder(output);
  for (const p of paths) await rename(p, join(dir, p.slice(output.length + 1)));
  return `moved the ${checkpoints.length} checkpoint(s) and metrics of an earlier run in ${output} to ${dir} (--resume continues a run; --overwrite-output deletes them instead)`;
}

/**
 * Removes the temporary files (`.<name>.tmp-<pid>-<hex>`, io/atomic.ts) that a killed process left
 * in `output` (its pid no longer running): a model-sized `.model.safetensors.tmp-*` from a kill
 * during the final save would otherwise stay for good. Resolves to the removed paths.
 */
export async function removeStaleTempFiles(output: string): Promise<string[]> {
  const removed: string[] = [];
  for (const name of await readdir(output).catch(() => [] as string[])) {
    const m = /^\..+\.tmp-(\d+)-[0-9a-f]+$/.exec(name);
    if (!m || isRunning(Number(m[1]))) continue;
    await rm(join(output, name), { force: true });
    removed.push(join(output, name));
  }
  return removed;
}

/**
 * At the start of the loop (the run lock held): completes or removes partial saves (and keeps
 * `limit` checkpoints when one was completed), and on a
 * resume from `resumedStep` moves newer checkpoints aside and drops metrics lines after it.
 */
export async function tidyCheckpoints(output: string, resumedStep: number | undefined, log: (m: string) => void, limit?: number): Promise<void> {
  for (const file of await removeStaleTempFiles(output)) log(`removed ${file}, a temporary file a stopped run left`);
  const { removed, completed } = await settlePartialCheckpoints(output);
  for (const dir of removed) log(`removed ${dir}, a checkpoint an earlier run did not finish writing`);
  for (const dir of completed) log(`completed ${dir}, a checkpoint an earlier run wrote whole but was stopped before putting in place`);
  // A save stopped after its checkpoint was whole but before pruning: prune now (--save-total-limit).
  if (completed.length && limit !== undefined) {
    for (const dir of await pruneCheckpoints(output, limit)) log(`removed ${dir} (--save-total-limit ${limit})`);
  }
  if (resumedStep === undefined) return;
  const newer = (await listCheckpoints(output)).filter((c) => c.step > resumedStep).reverse();
  if (newer.length) {
    const dir = await asideFolder(output);
    for (const c of newer) await rename(c.dir, join(dir, `checkpoint-${c.step}`));
    log(`moved ${newer.map((c) => `checkpoint-${c.step}`).join(', ')} (after the resumed step ${resumedStep}) to ${dir}`);
  }
  await trimMetrics(join(output, METRICS_FILE), resumedStep);
}

/** Drops the lines of metrics.jsonl logged after `step` (a resumed run logs them again). */
async function trimMetrics(file: string, step: number): Promise<void> {
  const text = await readFile(file, 'utf8').catch(() => undefined);
  if (text === undefined) return;
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  const keep = lines.filter((l) => {
    try {
      return !((JSON.parse(l) as { step?: unknown }).step as number > step);
    } catch {
      return false; // half a line from a killed write
    }
  });
  if (keep.length !== lines.length || !text.endsWith('\n')) await writeFile(file, keep.length ? `${keep.join('\n')}\n` : '');
}

/** Saves a checkpoint keeping at most `limit` (see saveTrainingCheckpoint's `keep`), logging what it did. */
export async function saveCheckpointKeeping(output: string, c: CheckpointContents, limit: number | undefined, log: (m: string) => void): Promise<string> {
  const removed: string[] = [];
  const dir = await saveTrainingCheckpoint(output, c, undefined, limit === undefined ? undefined : { limit, removed: (d) => removed.push(d) });
  log(`saved ${dir}`);
  for (const old of removed) log(`removed ${old} (--save-total-limit ${limit})`);
  return dir;
}
