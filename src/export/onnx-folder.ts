/**
 * `exportOnnx`: a causal LM (model folder, hub id or LoRA adapter folder) written as the folder
 * transformers.js loads with `AutoModelForCausalLM.from_pretrained` / `pipeline`: Optimum's
 * layout, onnx/model.onnx (fp32, the default dtype on Node) with config.json,
 * generation_config.json and the tokenizer files.
 *
 * The export is written into a hidden staging folder inside the target and its files are then
 * renamed into place, so a failed export leaves the target as it was, and the target itself is
 * never renamed or removed (it may be a mount point, or sit in a folder we cannot write). A
 * non-empty folder is written into only when it is an earlier export; files of the earlier export
 * that this one does not write (say onnx/model.onnx_data) are removed.
 */
import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, open, readdir, rename, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { toOnnxBytes } from '../engine/onnx-export.js';
import { DpoError } from '../errors.js';
import { withPath } from '../io/atomic.js';
import { isRunning } from '../io/run-lock.js';
import type { JsonObject } from '../io/json-file.js';
import { CONFIG_FILE, GENERATION_CONFIG_FILE, TOKENIZER_FILES } from '../io/model-files.js';
import type { Pretrained } from '../models/pretrained.js';
import { loadModelOrAdapter } from '../models/load-model.js';
import { buildOptimumDecoderGraph } from './decoder-graph.js';

export const ONNX_SUBFOLDER = 'onnx';
export const ONNX_MODEL_FILE = 'model.onnx';
/** transformers.js' name for the first external data chunk of model.onnx. */
export const ONNX_DATA_FILE = 'model.onnx_data';
const PRODUCER = 'dpo-ts';

/** Weights above this many bytes go to external data (protobuf cannot hold 2 GiB). */
export const EXTERNAL_DATA_THRESHOLD = 1.5 * 2 ** 30;

export type ExternalDataMode = 'auto' | 'always' | 'never';

export interface ExportOnnxOptions {
  /** A model folder, a hub id ("org/name[@revision]"), or a LoRA adapter folder (merged into its base). */
  model: string;
  /** Folder to write; must not exist, be empty, or hold an earlier export. */
  output: string;
  /** Weights in onnx/model.onnx_data rather than inside model.onnx (default 'auto': when over 1.5 GiB). */
  externalData?: ExternalDataMode;
  /** An already loaded model (skips loading `model`; `model` is then only used in messages). */
  pretrained?: Pretrained;
  /** Aborting it stops the export between files; the staging folder is removed and the output left as it was. */
  signal?: AbortSignal;
}

export interface ExportOnnxResult {
  output: string;
  modelType: string;
  parameters: number;
  externalData: boolean;
  /** Files written, relative to `output`. */
  files: string[];
  /** Bytes written in all. */
  bytes: number;
  /** Files transformers.js reads that the model folder did not have (e.g. no tokenizer.json). */
  missing: string[];
}

/** What an export writes: the only names an earlier export's folder may hold. */
function isExportFile(rel: string): boolean {
  return (
    rel === CONFIG_FILE ||
    rel === GENERATION_CONFIG_FILE ||
    (TOKENIZER_FILES as readonly string[]).includes(rel) ||
    rel === ONNX_SUBFOLDER ||
    rel === `${ONNX_SUBFOLDER}/${ONNX_MODEL_FILE}` ||
    rel === `${ONNX_SUBFOLDER}/${ONNX_DATA_FILE}`
  );
}

/** Whether onnx/model.onnx in `dir` was written by dpo-ts (its producer name, near the file's start). */
async function producedByUs(dir: string): Promise<boolean> {
  const handle = await open(join(dir, ONNX_SUBFOLDER, ONNX_MODEL_FILE), 'r').catch(() => undefined);
  if (!handle) return false;
  try {
    const head = Buffer.alloc(256);
    const { bytesRead } = await handle.read(head, 0, head.length, 0);
    // producer_name is field 2, a string: tag 0x12, then its length.
    const needle = Buffer.concat([Buffer.of(0x12, PRODUCER.length), Buffer.from(PRODUCER)]);
    return head.subarray(0, bytesRead).includes(needle);
  } finally {
    await handle.close();
  }
}

/** Prefix of the staging folder an export writes inside its target (skipped when listing it). */
const STAGING_PREFIX = '.dpo-exporting-';

async function listRelative(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    if (e.name.startsWith(STAGING_PREFIX)) continue;
    out.push(e.name);
    if (e.isDirectory()) for (const sub of await readdir(join(dir, e.name))) out.push(`${e.name}/${sub}`);
  }
  return out;
}

/**
 * Throws unless `dir` may be written: absent, an empty folder, or an earlier export (a
 * dpo-ts onnx/model.onnx and nothing but export files). Returns whether it exists.
 */
export async function checkExportTarget(dir: string): Promise<boolean> {
  const s = await stat(dir).catch(() => undefined);
  if (!s) return false;
  if (!s.isDirectory()) throw new DpoError(`${dir}: exists and is not a folder`);
  const entries = await listRelative(dir);
  if (entries.length === 0) return true;
  const foreign = entries.filter((e) => !isExportFile(e));
  if (foreign.length > 0 || !(await producedByUs(dir))) {
    const what = foreign.length > 0 ? `it holds ${foreign.slice(0, 3).map((f) => `"${f}"`).join(', ')}${foreign.length > 3 ? ` and ${foreign.length - 3} more` : ''}` : 'its onnx/model.onnx was not written by dpo-ts';
    throw new DpoError(`${dir}: folder is not empty and is not an earlier dpo export (${what}); choose a new or empty folder`);
  }
  return true;
}

function jsonText(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

/** generation_config.json as transformers' GenerationConfig.from_model_config derives it. */
function derivedGenerationConfig(config: JsonObject): JsonObject {
  const out: JsonObject = {};
  for (const key of ['bos_token_id', 'eos_token_id', 'pad_token_id', 'decoder_start_token_id'] as const) {
    if (config[key] !== undefined && config[key] !== null) out[key] = config[key];
  }
  return out;
}

async function isFile(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined))?.isFile() ?? false;
}

async function writeParts(path: string, parts: readonly Uint8Array[]): Promise<void> {
  const handle = await open(path, 'wx');
  try {
    for (const part of parts) await handle.write(part);
  } finally {
    await handle.close();
  }
}

/**
 * Removes the staging folders of exports whose process is gone (killed mid-export): a running
 * export's own folder (live pid) is left alone.
 */
async function removeStaleStaging(dir: string): Promise<void> {
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    if (!name.startsWith(STAGING_PREFIX)) continue;
    const pid = Number(name.slice(STAGING_PREFIX.length).split('-')[0]);
    if (Number.isInteger(pid) && pid > 0 && !isRunning(pid)) await rm(join(dir, name), { recursive: true, force: true });
  }
}

function stopIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new DpoError('export stopped by a signal; the output folder is left as it was');
}

/** Writes the export into the empty folder `tmp`; returns the files written and missing. */
async function fillExport(tmp: string, p: Pretrained, external: boolean, signal?: AbortSignal): Promise<{ files: string[]; missing: string[] }> {
  const files: string[] = [];
  const missing: string[] = [];
  await mkdir(join(tmp, ONNX_SUBFOLDER));
  const graph = buildOptimumDecoderGraph(p.model);
  const parts: Uint8Array[] = [];
  const bytes = toOnnxBytes(graph, { initializers: p.weights, externalData: external ? { location: ONNX_DATA_FILE, parts } : undefined });
  stopIfAborted(signal);
  await writeFile(join(tmp, ONNX_SUBFOLDER, ONNX_MODEL_FILE), bytes);
  stopIfAborted(signal);
  files.push(`${ONNX_SUBFOLDER}/${ONNX_MODEL_FILE}`);
  if (external) {
    await writeParts(join(tmp, ONNX_SUBFOLDER, ONNX_DATA_FILE), parts);
    files.push(`${ONNX_SUBFOLDER}/${ONNX_DATA_FILE}`);
  }

  const config: JsonObject = { ...p.config };
  // transformers.js only looks for external data when the config says how many chunks there are.
  if (external) config['transformers.js_config'] = { ...((p.config['transformers.js_config'] as JsonObject | undefined) ?? {}), use_external_data_format: { [ONNX_MODEL_FILE]: 1 } };
  await writeFile(join(tmp, CONFIG_FILE), jsonText(config));
  await writeFile(join(tmp, GENERATION_CONFIG_FILE), jsonText(p.generationConfig ?? derivedGenerationConfig(p.config)));
  files.push(CONFIG_FILE, GENERATION_CONFIG_FILE);
  for (const name of TOKENIZER_FILES) {
    // copyFile follows symlinks, so files from a hub cache snapshot are copied as real files.
    if (await isFile(join(p.dir, name))) {
      await copyFile(join(p.dir, name), join(tmp, name));
      files.push(name);
    } else if (name === 'tokenizer.json' || name === 'tokenizer_config.json') missing.push(name);
  }
  return { files, missing };
}

/**
 * Moves the finished export from `staging` (inside `dir`) into `dir` file by file, then removes
 * what an earlier export left that this one did not write, and the staging folder.
 */
async function moveIntoPlace(staging: string, dir: string, files: readonly string[]): Promise<void> {
  await mkdir(join(dir, ONNX_SUBFOLDER), { recursive: true });
  for (const f of files) await rename(join(staging, f), join(dir, f));
  const written = new Set(files);
  for (const rel of await listRelative(dir)) {
    if (rel !== ONNX_SUBFOLDER && !written.has(rel) && isExportFile(rel)) await rm(join(dir, rel), { force: true });
  }
  await rm(staging, { recursive: true, force: true });
}

/** Exports the model as an ONNX folder for transformers.js (see the file comment). */
export async function exportOnnx(options: ExportOnnxOptions): Promise<ExportOnnxResult> {
  const target = resolve(options.output);
  const mode = options.externalData ?? 'auto';
  const existed = await checkExportTarget(target);
  const p = options.pretrained ?? (await loadModelOrAdapter(options.model, { tokenizer: false }));
  const parameters = [...p.weights.values()].reduce((n, w) => n + w.length, 0);
  const external = mode === 'always' || (mode === 'auto' && parameters * 4 > EXTERNAL_DATA_THRESHOLD);
  try {
    await mkdir(target, { recursive: true });
  } catch (e) {
    throw withPath(e, target);
  }
  await removeStaleStaging(target);
  const staging = join(target, `${STAGING_PREFIX}${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    await mkdir(staging);
    const { files, missing } = await fillExport(staging, p, external, options.signal);
    stopIfAborted(options.signal);
    let bytes = 0;
    for (const f of files) bytes += (await stat(join(staging, f))).size;
    // Checked again: files may have appeared in the folder while the model was being written.
    await checkExportTarget(target);
    await moveIntoPlace(staging, target, files);
    return { output: options.output, modelType: p.model.modelType, parameters, externalData: external, files, bytes, missing };
  } catch (e) {
    await rm(staging, { recursive: true, force: true });
    // A folder this export created (and left empty) goes too.
    if (!existed) await rmdir(target).catch(() => undefined);
    throw withPath(e, target);
  }
}
