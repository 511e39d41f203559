/**
 * ONNX Runtime's optimised models, cached on disk, so that a graph compiled once opens fast in
 * every later process.
 *
 * Creating a session for a big training graph is mostly ONNX Runtime's own work (parsing, the
 * optimisation passes at level 'all', kernel setup): 24 s for the Qwen3-0.6B-shaped LoRA step
 * with gradient checkpointing (BENCHMARKS.md, "Start-up"). The first compile of a graph asks ORT
 * to write the model it optimised (SessionOptions.optimizedModelFilePath); later compiles of the
 * same graph load that model with optimisation 'disabled', which skips the passes and gives the
 * same kernels on the same nodes, so the same results bit for bit (test/engine/compile-cache.test.ts).
 *
 * Key: SHA-256 over the ONNX bytes of the graph, the onnxruntime-node version, the execution
 * provider, every session option that shapes the optimised graph, and the CPU (the 'all' level's
 * layout passes are hardware-specific). Entry: one file `<key>.ortopt`, a header line with the
 * SHA-256 and length of the model bytes that follow, written to a temporary name and renamed, so
 * a reader sees a whole entry or none. A damaged entry (wrong length or digest, or a model ORT
 * refuses) is removed and rebuilt from the graph; a cache folder that cannot be written only
 * costs the speed-up. Only the CPU execution provider is cached (the GPU providers' optimised
 * models hold device-specific nodes). Our graphs take the weights as inputs, so an entry is the
 * graph alone (megabytes), far below protobuf's 2 GB limit.
 *
 * Opt-in: a session opened from a cached optimised model peaked 1.3 GB higher on the gpt2-124m
 * DPO step (6.7 against 5.4 GB; ORT at level 'basic' or 'disabled' alike) and saved only part of
 * the start-up, so it is off unless asked for. Where: RuntimeOptions.compileCache (a folder, true
 * for the default folder, false for none), else $DPO_TS_COMPILE_CACHE ('on' for the default
 * folder, a path for that folder, 'off' or unset for none); the default folder is `compiled/` in
 * the shared cache folder ($DPO_TS_CACHE or ~/.cache/dpo-ts). `dpo --compile-cache <command>`
 * turns it on for one run.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, readFile, readdir, rename, rm, stat, utimes } from 'node:fs/promises';
import { arch, cpus, homedir, platform } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import type { CompileCacheUse } from './ort-platform-types.js';

/** The folder shared by the project's caches: $DPO_TS_CACHE, else $XDG_CACHE_HOME/dpo-ts or ~/.cache/dpo-ts. */
export function defaultCacheDir(): string {
  return process.env.DPO_TS_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'dpo-ts');
}

/** Environment variable: 'on' (or '1', 'true', 'yes') enables the compile cache in its default folder; a path enables it there; 'off' or unset: none. */
export const COMPILE_CACHE_ENV = 'DPO_TS_COMPILE_CACHE';

const ENTRY_VERSION = 1;
const MAGIC = `dpo-ts ortopt ${ENTRY_VERSION}\n`;
/** Entries kept; the least recently used beyond this are removed after each write. */
export const COMPILE_CACHE_MAX_ENTRIES = 64;
/** Temporary files older than this were left by a process that died mid-write. */
const STALE_TMP_MS = 3_600_000;

/**
 * The cache folder for `setting` (RuntimeOptions.compileCache): false or 'off' → none; true or
 * 'on' → `compiled/` in {@link defaultCacheDir}; a path → that; undefined → what
 * $DPO_TS_COMPILE_CACHE says the same way, and none when it is unset (the cache is opt-in).
 */
export function compileCacheDir(setting?: string | boolean): string | undefined {
  const value = setting ?? process.env[COMPILE_CACHE_ENV];
  if (value === undefined || value === false) return undefined;
  const text = value === true ? 'on' : value.trim();
  if (text === '' || /^(off|0|false|no)$/i.test(text)) return undefined;
  if (/^(on|1|true|yes)$/i.test(text)) return join(defaultCacheDir(), 'compiled');
  return text;
}

/** The entry key: what the optimised model depends on. */
export function compileCacheKey(onnx: Uint8Array, device: string, options: Readonly<Record<string, unknown>>): string {
  const cpu = cpus()[0]?.model ?? 'unknown';
  const context = { entry: ENTRY_VERSION, ort: ort.env.versions.node ?? ort.env.versions.common, device, options, platform: platform(), arch: arch(), cpu };
  return createHash('sha256').update(JSON.stringify(context)).update('\n').update(onnx).digest('hex');
}

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

export type CacheLookup = { kind: 'hit'; model: Uint8Array } | { kind: 'miss' } | { kind: 'corrupt'; why: string };

/** Reads and checks the entry for `key` in `dir`; a damaged entry is removed (the caller rebuilds it). */
export async function readCompileCache(dir: string, key: string): Promise<CacheLookup> {
  const file = entryPath(dir, key);
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch {
    return { kind: 'miss' };
  }
  const why = entryProblem(bytes, key);
  if (why) {
    await removeEntry(dir, key);
    return { kind: 'corrupt', why };
  }
  const headerEnd = bytes.indexOf(10, MAGIC.length);
  // Least recently used: a hit refreshes the entry's time.
  const now = new Date();
  await utimes(file, now, now).catch(() => undefined);
  return { kind: 'hit', model: bytes.subarray(headerEnd + 1) };
}

function entryProblem(bytes: Buffer, key: string): string | undefined {
  if (bytes.subarray(0, MAGIC.length).toString('latin1') !== MAGIC) return 'not a compile-cache entry';
  const headerEnd = bytes.indexOf(10, MAGIC.length);
  if (headerEnd < 0) return 'no header';
  let header: { key?: unknown; bytes?: unknown; sha256?: unknown };
  try {
    header = JSON.parse(bytes.subarray(MAGIC.length, headerEnd).toString('utf8')) as typeof header;
  } catch {
    return 'unreadable header';
  }
  const model = bytes.subarray(headerEnd + 1);
  if (header.key !== key) return 'written for another key';
  if (header.bytes !== model.byteLength) return `${model.byteLength} model bytes, header says ${String(header.bytes)}`;
  if (header.sha256 !== sha256(model)) return 'model bytes do not match their SHA-256';
  return undefined;
}

/** A path for ORT to write the optimised model to, inside `dir` (made if needed); undefined when `dir` cannot be written. */
export async function optimizedModelTempPath(dir: string): Promise<string | undefined> {
  try {
    await mkdir(dir, { recursive: true });
    return join(dir, `.tmp-${process.pid}-${randomBytes(6).toString('hex')}.onnx`);
  } catch {
    return undefined;
  }
}

/**
 * Turns the model ORT wrote at `tmp` into the entry for `key` (atomically: header + bytes into
 * another temporary file, fsync, rename), removes `tmp`, and prunes old entries. Failures only
 * lose the entry.
 */
export async function commitCompileCache(dir: string, key: string, tmp: string): Promise<boolean> {
  const staging = `${tmp}.entry`;
  try {
    const model = await readFile(tmp);
    const header = JSON.stringify({ key, bytes: model.byteLength, sha256: sha256(model) });
    const handle = await open(staging, 'wx');
    try {
      await handle.writeFile(Buffer.concat([Buffer.from(MAGIC, 'latin1'), Buffer.from(`${header}\n`, 'utf8'), model]));
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(staging, entryPath(dir, key));
    return true;
  } catch {
    return false;
  } finally {
    await rm(tmp, { force: true }).catch(() => undefined);
    await rm(staging, { force: true }).catch(() => undefined);
    await pruneCompileCache(dir).catch(() => undefined);
  }
}

/** Removes the entry for `key` (a damaged one, or one ORT refused). */
export async function removeEntry(dir: string, key: string): Promise<void> {
  await rm(entryPath(dir, key), { force: true }).catch(() => undefined);
}

/** Keeps the {@link COMPILE_CACHE_MAX_ENTRIES} most recently used entries, and drops stale temporary files. */
export async function pruneCompileCache(dir: string, maxEntries = COMPILE_CACHE_MAX_ENTRIES): Promise<void> {
  const names = await readdir(dir);
  const entries: { name: string; time: number }[] = [];
  const now = Date.now();
  for (const name of names) {
    const s = await stat(join(dir, name)).catch(() => undefined);
    if (!s) continue;
    if (name.startsWith('.tmp-')) {
      if (now - s.mtimeMs > STALE_TMP_MS) await rm(join(dir, name), { force: true });
    } else if (name.endsWith('.ortopt')) entries.push({ name, time: s.mtimeMs });
  }
  entries.sort((a, b) => b.time - a.time);
  for (const e of entries.slice(maxEntries)) await rm(join(dir, e.name), { force: true });
}

export function entryPath(dir: string, key: string): string {
  return join(dir, `${key}.ortopt`);
}

/**
 * A session for `bytes` through the cache in the folder `setting` names (compileCacheDir): a
 * cached optimised model opens with optimisation 'disabled'; otherwise ORT optimises `bytes` and
 * writes its result for next time. `create` makes a session (and words ORT's errors).
 */
export async function openCachedSession(
  bytes: Uint8Array,
  sessionOptions: ort.InferenceSession.SessionOptions,
  setting: string | boolean | undefined,
  create: (model: Uint8Array, options: ort.InferenceSession.SessionOptions) => Promise<ort.InferenceSession>,
): Promise<CompileCacheUse> {
  const dir = compileCacheDir(setting);
  if (!dir) return { session: await create(bytes, sessionOptions), cache: 'off' };
  // What shapes the optimised graph (profiling and output locations do not).
  const key = compileCacheKey(bytes, 'cpu', {
    level: sessionOptions.graphOptimizationLevel,
    mode: sessionOptions.executionMode,
    threads: sessionOptions.intraOpNumThreads ?? null,
    arena: sessionOptions.enableCpuMemArena,
    pattern: sessionOptions.enableMemPattern,
  });
  const found = await readCompileCache(dir, key);
  if (found.kind === 'hit') {
    try {
      return { session: await ort.InferenceSession.create(found.model, { ...sessionOptions, graphOptimizationLevel: 'disabled' }), cache: 'hit' };
    } catch {
      // A model ORT refuses (written by a build that differs in a way the key missed): rebuild it.
      await removeEntry(dir, key);
    }
  }
  const tmp = await optimizedModelTempPath(dir);
  // ORT warns on every save at level 'all' that the model may hold hardware-specific layouts: the
  // key names the CPU, so that warning is silenced for this session (errors still print).
  const session = await create(bytes, tmp ? { ...sessionOptions, optimizedModelFilePath: tmp, logSeverityLevel: 3 } : sessionOptions);
  if (tmp) await commitCompileCache(dir, key, tmp);
  return { session, cache: found.kind === 'miss' ? 'miss' : 'corrupt' };
}
