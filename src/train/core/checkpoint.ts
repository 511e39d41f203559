/**
 * Training checkpoints: `<output>/checkpoint-<step>/` holding the weights (Hugging Face layout),
 * optimizer state, and trainer state (step, data position, schedule). Each is written into a
 * temporary folder that is renamed into place when complete, so a crash leaves either a whole
 * checkpoint or none. trainer_state.json, written last, lists every other file with its size
 * and SHA-256; on resume a checkpoint is used only when every listed file is there and intact
 * and it holds every tensor and optimizer slot the run needs; otherwise it is reported as
 * damaged and the one before it is used.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { DpoError } from '../../errors.js';
import { readSafetensors } from '../../io/safetensors.js';
import { writeSafetensors } from '../../io/safetensors-write.js';
import type { BatcherState } from '../../data/batcher.js';

export interface TrainerState {
  /** Optimizer steps completed. */
  step: number;
  /** Where the next batch comes from. */
  batcher: BatcherState;
  /** Steps the run was planned for (the schedule depends on it). */
  totalSteps: number;
  /** Digest of the options that must not change across a resume. */
  configDigest: string;
  /** Every other file of the checkpoint (relative path) with its size and SHA-256, written by save. */
  files?: Record<string, { size: number; sha256: string }>;
}

const OPTIMIZER_FILE = 'optimizer.safetensors';
const STATE_FILE = 'trainer_state.json';
const WEIGHTS_FILE = 'weights.safetensors';

export function checkpointDir(output: string, step: number): string {
  return join(output, `checkpoint-${step}`);
}

export interface CheckpointContents {
  state: TrainerState;
  /** Trainable weights by name. */
  weights: ReadonlyMap<string, Float32Array>;
  shapes: ReadonlyMap<string, readonly number[]>;
  /** Optimizer state by parameter and slot. */
  optimizer: ReadonlyMap<string, Record<string, Float32Array>>;
}

/**
 * Writes a checkpoint atomically. `writeModel` may add a Hugging Face model folder's files (so a
 * checkpoint can be loaded as a model); the trainable weights are always stored too.
 */
export async function saveTrainingCheckpoint(
  output: string,
  c: CheckpointContents,
  writeModel?: (dir: string) => Promise<void>,
  /**
   * --save-total-limit: the older checkpoints beyond `keep - 1` are removed once the new one is
   * complete and before it is renamed into place, so the folder never holds more than `keep`
   * checkpoints and one partial (a complete partial is put in place by {@link settlePartialCheckpoints}).
   */
  keep?: { limit: number; removed: (dir: string) => void },
): Promise<string> {
  const final = checkpointDir(output, c.state.step);
  const tmp = `${final}.partial-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  try {
    if (writeModel) await writeModel(join(tmp, 'model'));
    const weights = new Map([...c.weights].map(([k, v]) => [k, { data: v, shape: [...(c.shapes.get(k) as readonly number[])] }]));
    await writeSafetensors(join(tmp, WEIGHTS_FILE), weights);
    const opt = new Map<string, { data: Float32Array; shape: number[] }>();
    for (const [name, slots] of c.optimizer) {
      for (const [slot, data] of Object.entries(slots)) opt.set(`${name}::${slot}`, { data, shape: [...(c.shapes.get(name) as readonly number[])] });
    }
    if (opt.size) await writeSafetensors(join(tmp, OPTIMIZER_FILE), opt);
    const state: TrainerState = { ...c.state, files: await fileDigests(tmp) };
    await writeFile(join(tmp, STATE_FILE), `${JSON.stringify(state, null, 2)}\n`);
    if (keep) for (const old of await pruneCheckpoints(output, Math.max(keep.limit - 1, 0), c.state.step)) keep.removed(old);
    await rm(final, { recursive: true, force: true });
    await rename(tmp, final);
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
  return final;
}

/**
 * Deals with the `checkpoint-<step>.partial-<pid>` folders a killed save left in `output` (the
 * caller holds the run lock, so none is being written): one whose files are all there and match
 * its trainer_state.json was killed between pruning and its rename, and is put in place
 * (`completed`); the others are removed (`removed`).
 */
export async function settlePartialCheckpoints(output: string): Promise<{ removed: string[]; completed: string[] }> {
  const names = await readdir(output).catch(() => [] as string[]);
  const removed: string[] = [];
  const completed: string[] = [];
  for (const name of names) {
    // A checkpoint whose removal was killed midway (pruneCheckpoints): finish removing it.
    if (/^checkpoint-\d+\.removing-\d+$/.test(name)) {
      await rm(join(output, name), { recursive: true, force: true });
      removed.push(join(output, name));
      continue;
    }
    const m = /^(checkpoint-\d+)\.partial-\d+$/.exec(name);
    if (!m) continue;
    const dir = join(output, name);
    const final = join(output, m[1]);
    if (!(await stat(final).catch(() => undefined)) && (await isComplete(dir))) {
      await rename(dir, final);
      completed.push(final);
    } else {
      await rm(dir, { recursive: true, force: true });
      removed.push(dir);
    }
  }
  return { removed, completed };
}

/** {@link settlePartialCheckpoints}, returning the removed folders only. */
export async function removePartialCheckpoints(output: string): Promise<string[]> {
  return (await settlePartialCheckpoints(output)).removed;
}

async function isComplete(dir: string): Promise<boolean> {
  try {
    const state = JSON.parse(await readFile(join(dir, STATE_FILE), 'utf8')) as TrainerState;
    if (!state.files) return false;
    await verifyFiles(dir, state.files);
    return true;
  } catch {
    return false;
  }
}

/**
 * Keeps the newest `limit` checkpoints of `output` and removes the others; returns the removed
 * paths. `below`: only checkpoints of earlier steps count (and are removed).
 */
export async function pruneCheckpoints(output: string, limit: number, below = Infinity): Promise<string[]> {
  const old = (await listCheckpoints(output)).filter((c) => c.step < below).slice(limit).map((c) => c.dir);
  for (const dir of old) await removeCheckpointDir(dir);
  return old;
}

/**
 * Removes a checkpoint folder as one step: renamed to `<dir>.removing-<pid>` first, then deleted,
 * so a kill midway leaves no half-deleted `checkpoint-<step>` (which would count as one more
 * checkpoint) but a `.removing-` folder that {@link settlePartialCheckpoints} deletes.
 */
async function removeCheckpointDir(dir: string): Promise<void> {
  const doomed = `${dir}.removing-${process.pid}`;
  await rename(dir, doomed).catch((e: NodeJS.ErrnoException) => {
    if (e.code !== 'ENOENT') throw e;
  });
  await rm(doomed, { recursive: true, force: true });
}

export async function listCheckpoints(output: string): Promise<{ step: number; dir: string }[]> {
  const names = await readdir(output).catch(() => [] as string[]);
  return names
    .map((n) => /^checkpoint-(\d+)$/.exec(n))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ step: Number(m[1]), dir: join(output, m[0]) }))
    .sort((a, b) => b.step - a.step);
}

/**
 * A checkpoint's model weights in full: `base` (the starting weights) overwritten by the
 * checkpoint's trained ones, so that a checkpoint of a partly frozen run reads as a whole model.
 */
export async function checkpointModelWeights(dir: string, base: ReadonlyMap<string, Float32Array>): Promise<Map<string, Float32Array>> {
  const trained = await readSafetensors(join(dir, WEIGHTS_FILE));
  const out = new Map(base);
  for (const [name, t] of trained) out.set(name, t.data);
  return out;
}

/** What a run needs from a checkpoint: its trainable tensors with their shapes, and the optimizer's slots. */
export interface CheckpointExpectation {
  shapes: ReadonlyMap<string, readonly number[]>;
  /** Optimizer state slots per trainable tensor (e.g. exp_avg, exp_avg_sq); empty for plain SGD. */
  optimizerSlots: readonly string[];
}

export async function loadTrainingCheckpoint(dir: string, expect?: CheckpointExpectation): Promise<CheckpointContents> {
  const state = JSON.parse(await readFile(join(dir, STATE_FILE), 'utf8')) as TrainerState;
  if (typeof state.step !== 'number' || !state.batcher) throw new Error(`${join(dir, STATE_FILE)} is incomplete`);
  // Without the list nothing can be verified (a hand-made or foreign checkpoint): not used.
  if (!state.files || typeof state.files !== 'object') throw new Error(`${STATE_FILE} has no "files" list, so its files cannot be verified`);
  await verifyFiles(dir, state.files);
  const w = await readSafetensors(join(dir, WEIGHTS_FILE));
  const weights = new Map<string, Float32Array>();
  const shapes = new Map<string, readonly number[]>();
  for (const [k, t] of w) {
    weights.set(k, t.data);
    shapes.set(k, t.shape);
  }
  const optimizer = new Map<string, Record<string, Float32Array>>();
  const optFile = await readSafetensors(join(dir, OPTIMIZER_FILE)).catch((e: Error) => {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' || /ENOENT|no such file/i.test(e.message)) return new Map();
    throw e;
  });
  for (const [k, t] of optFile) {
    const [name, slot] = k.split('::');
    const rec = optimizer.get(name) ?? {};
    rec[slot] = t.data;
    optimizer.set(name, rec);
  }
  if (expect) checkComplete(expect, shapes, optimizer);
  return { state, weights, shapes, optimizer };
}

/** Size and SHA-256 of every file below `dir`, by relative path with '/' separators. */
async function fileDigests(dir: string): Promise<Record<string, { size: number; sha256: string }>> {
  const out: Record<string, { size: number; sha256: string }> = {};
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    out[relative(dir, path).split(sep).join('/')] = { size: (await stat(path)).size, sha256: await sha256File(path) };
  }
  return out;
}

function sha256File(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    createReadStream(path)
      .on('data', (chunk) => hash.update(chunk))
      .on('error', reject)
      .on('end', () => resolve(hash.digest('hex')));
  });
}

async function verifyFiles(dir: string, files: NonNullable<TrainerState['files']>): Promise<void> {
  for (const [name, want] of Object.entries(files)) {
    const path = join(dir, ...name.split('/'));
    const size = (await stat(path).catch(() => undefined))?.size;
    if (size === undefined) throw new Error(`${name} is missing`);
    if (size < want.size) throw new Error(`${name} is truncated (${size} of ${want.size} bytes)`);
    if (size !== want.size) throw new Error(`${name} has ${size} bytes, ${want.size} were saved`);
    if ((await sha256File(path)) !== want.sha256) throw new Error(`${name} does not match its SHA-256 in ${STATE_FILE}`);
  }
}

function checkComplete(
  expect: CheckpointExpectation,
  shapes: ReadonlyMap<string, readonly number[]>,
  optimizer: ReadonlyMap<string, Record<string, Float32Array>>,
): void {
  const missing = [...expect.shapes.keys()].filter((n) => !shapes.has(n));
  if (missing.length) throw new Error(`${WEIGHTS_FILE} lacks ${missing.length} of the run's tensors (${missing.slice(0, 3).join(', ')}${missing.length > 3 ? ', ...' : ''})`);
  for (const [name, shape] of expect.shapes) {
    const got = shapes.get(name) as readonly number[];
    if (got.length !== shape.length || got.some((d, i) => d !== shape[i])) throw new Error(`${WEIGHTS_FILE}: "${name}" has shape [${got.join(', ')}], the run needs [${shape.join(', ')}]`);
  }
  if (expect.optimizerSlots.length === 0) return;
  if (optimizer.size === 0) throw new Error(`${OPTIMIZER_FILE} is missing`);
  for (const name of expect.shapes.keys()) {
    for (const slot of expect.optimizerSlots) {
      if (!optimizer.get(name)?.[slot]) throw new Error(`${OPTIMIZER_FILE} lacks "${name}::${slot}"`);
    }
  }
}

/**
 * The newest loadable checkpoint in `output` (or the given one). Damaged or incomplete newer ones
 * (see the module comment) are reported through `warn` and skipped.
 */
export async function findResumableCheckpoint(
  output: string,
  explicit: string | undefined,
  warn: (message: string) => void,
  expect?: CheckpointExpectation,
): Promise<{ dir: string; contents: CheckpointContents }> {
  if (explicit) {
    try {
      return { dir: explicit, contents: await loadTrainingCheckpoint(explicit, expect) };
    } catch (e) {
      throw new DpoError(`resume: checkpoint ${explicit} cannot be read: ${(e as Error).message}`);
    }
  }
  const all = await listCheckpoints(output);
  if (all.length === 0) throw new DpoError(`resume: no checkpoint-<step> folder in ${output}`);
  for (const c of all) {
    try {
      return { dir: c.dir, contents: await loadTrainingCheckpoint(c.dir, expect) };
    } catch (e) {
      warn(`resume: ${c.dir} is damaged (${(e as Error).message}); trying the one before`);
    }
  }
  throw new DpoError(`resume: every checkpoint in ${output} is damaged`);
}
