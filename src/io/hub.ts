/**
 * Resolving a model reference to a local folder: an existing folder is used as is; "org/name"
 * or "org/name@revision" is looked up in the Hugging Face cache and, when files are missing and
 * HF_HUB_OFFLINE is not set, downloaded into it.
 *
 * A cached snapshot that already holds every required file is used without any network request,
 * so training runs do not depend on the hub being reachable once a model has been fetched.
 */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import cliProgress from 'cli-progress';
import { DpoError } from '../errors.js';
import {
  cachedCommit,
  hubCacheDir,
  isCachedFile,
  isOffline,
  parseModelRef,
  repoCacheDir,
  snapshotDir,
  type Env,
} from './hub-cache.js';
import {
  downloadIntoCache,
  fetchRepoInfo,
  hubClient,
  listRepoFiles,
  planFile,
  writeRef,
  type FetchFn,
  type HubClient,
  type PlannedFile,
} from './hub-download.js';
import { readJsonObject } from './json-file.js';
import { CONFIG_FILE, GENERATION_CONFIG_FILE, WEIGHTS_FILE, WEIGHTS_INDEX_FILE } from './model-files.js';

export { hubCacheDir, parseModelRef, type ModelRef } from './hub-cache.js';

/** Files a model needs: without them loading fails. */
const REQUIRED_FILES = [CONFIG_FILE, 'tokenizer.json'] as const;
/** Files taken when the repository has them. */
const OPTIONAL_FILES = [
  'tokenizer_config.json',
  'special_tokens_map.json',
  GENERATION_CONFIG_FILE,
  'chat_template.jinja',
] as const;

export interface ResolveModelOptions {
  /** Environment to read HF_* variables from (default process.env). */
  env?: Env;
  /** Show a download progress bar; default: when stderr is a TTY. */
  progress?: boolean;
  /** Where the progress bar goes (default process.stderr). */
  progressStream?: NodeJS.WritableStream;
  /** fetch used for all hub requests (tests, proxies). */
  fetch?: FetchFn;
}

export interface ResolvedModel {
  /** Folder holding config.json, the weights and the tokenizer files. */
  dir: string;
  /** "local": a folder given by path; "cache": found complete in the cache; "download": fetched now. */
  source: 'local' | 'cache' | 'download';
  repoId?: string;
  revision?: string;
  commit?: string;
}

/** Required files absent from `dir` (weights resolved through the index when there is one). */
async function missingFiles(dir: string): Promise<string[]> {
  const missing: string[] = [];
  for (const f of REQUIRED_FILES) if (!(await isCachedFile(join(dir, f)))) missing.push(f);
  if (await isCachedFile(join(dir, WEIGHTS_FILE))) return missing;
  const indexPath = join(dir, WEIGHTS_INDEX_FILE);
  if (!(await isCachedFile(indexPath))) return [...missing, WEIGHTS_FILE];
  for (const shard of await shardsOf(indexPath)) {
    if (!(await isCachedFile(join(dir, shard)))) missing.push(shard);
  }
  return missing;
}

async function shardsOf(indexPath: string): Promise<string[]> {
  const map = (await readJsonObject(indexPath)).weight_map;
  if (typeof map !== 'object' || map === null) throw new DpoError(`${indexPath}: "weight_map" is missing or not an object`);
  const shards = new Set<string>();
  for (const v of Object.values(map)) {
    if (typeof v !== 'string' || v.includes('..') || v.startsWith('/')) {
      throw new DpoError(`${indexPath}: weight_map holds an invalid shard name ${JSON.stringify(v)}`);
    }
    shards.add(v);
  }
  return [...shards];
}

/** Resolve a folder path or a hub model id to a local folder, downloading when needed. */
export async function resolveModel(ref: string, options: ResolveModelOptions = {}): Promise<ResolvedModel> {
  const asPath = await stat(ref).catch(() => undefined);
  if (asPath?.isDirectory()) return { dir: ref, source: 'local' };
  if (asPath) throw new DpoError(`${ref}: is a file, not a model folder (give the folder holding config.json and the weights)`);
  const name = ref.split('@')[0];
  if (/^(\.{1,2}|~)?[/\\]/.test(name) || name.split('/').length > 2) {
    throw new DpoError(`${ref}: model folder does not exist`);
  }
  const env = options.env ?? process.env;
  const { repoId, revision } = parseModelRef(ref);
  const repoDir = repoCacheDir(hubCacheDir(env), repoId);

  const commit = await cachedCommit(repoDir, revision);
  if (commit) {
    const dir = snapshotDir(repoDir, commit);
    const missing = await missingFiles(dir);
    if (missing.length === 0) return { dir, source: 'cache', repoId, revision, commit };
  }
  if (isOffline(env)) {
    const dir = snapshotDir(repoDir, commit ?? 'local');
    const missing = await missingFiles(dir);
    const refNote = commit ? '' : ` and write "local" into ${join(repoDir, 'refs', revision)}`;
    throw new DpoError(
      `${repoId}@${revision} is not fully in the Hugging Face cache and HF_HUB_OFFLINE is set: missing ${missing.join(', ')}; put them in ${dir}${refNote}`,
    );
  }
  const client = hubClient(env.HF_ENDPOINT ?? 'https://huggingface.co', env.HF_TOKEN ?? env.HUGGING_FACE_HUB_TOKEN, options.fetch);
  const downloaded = await download(client, repoId, revision, repoDir, options);
  return { ...downloaded, source: 'download', repoId, revision };
}

async function download(
  client: HubClient,
  repoId: string,
  revision: string,
  repoDir: string,
  options: ResolveModelOptions,
): Promise<{ dir: string; commit: string }> {
  const info = await fetchRepoInfo(client, repoId, revision);
  const commit = info.commit;
  const listed = info.files ?? (await listRepoFiles(client, repoId, commit));
  const dir = snapshotDir(repoDir, commit);
  const has = (f: string) => listed.includes(f);

  // Decide the weight files first: the index (when sharded) must be fetched to know the shards.
  const wanted: string[] = [...REQUIRED_FILES];
  if (!has(WEIGHTS_FILE) && has(WEIGHTS_INDEX_FILE)) {
    await fetchFiles(client, repoId, repoDir, commit, [WEIGHTS_INDEX_FILE], options, true);
    wanted.push(...(await shardsOf(join(dir, WEIGHTS_INDEX_FILE))));
  } else if (!has(WEIGHTS_FILE)) {
    throw new DpoError(
      `${repoId}@${revision} has no safetensors weights (${WEIGHTS_FILE} or ${WEIGHTS_INDEX_FILE}); dpo-ts cannot read PyTorch .bin files`,
    );
  } else {
    wanted.push(WEIGHTS_FILE);
  }
  for (const f of REQUIRED_FILES) {
    if (!has(f)) throw new DpoError(`${repoId}@${revision} has no ${f}, which dpo-ts needs`);
  }
  const optional = OPTIONAL_FILES.filter(has);
  await fetchFiles(client, repoId, repoDir, commit, wanted, options, true);
  await fetchFiles(client, repoId, repoDir, commit, optional, options, false);
  await writeRef(repoDir, revision, commit);
  const stillMissing = await missingFiles(dir);
  if (stillMissing.length > 0) throw new DpoError(`${repoId}@${revision}: after downloading, still missing ${stillMissing.join(', ')} in ${dir}`);
  return { dir, commit };
}

/** Download those of `paths` not already in the snapshot, with one progress bar over all of them. */
async function fetchFiles(
  client: HubClient,
  repoId: string,
  repoDir: string,
  commit: string,
  paths: readonly string[],
  options: ResolveModelOptions,
  required: boolean,
): Promise<void> {
  const dir = snapshotDir(repoDir, commit);
  const plans: PlannedFile[] = [];
  for (const path of paths) {
    if (await isCachedFile(join(dir, path))) continue;
    const plan = await planFile(client, repoId, commit, path);
    if (plan) plans.push(plan);
    else if (required) throw new DpoError(`${repoId}: ${path} not found on ${client.endpoint} at commit ${commit}`);
  }
  if (plans.length === 0) return;
  const total = plans.reduce((sum, p) => sum + p.size, 0);
  const stream = options.progressStream ?? process.stderr;
  const show = options.progress ?? (process.stderr.isTTY === true && stream === process.stderr);
  const bar = show
    ? new cliProgress.SingleBar(
        {
          stream,
          format: `downloading ${repoId} {file} [{bar}] {percentage}% | {done}/{all} MB`,
          hideCursor: true,
          clearOnComplete: false,
          noTTYOutput: true,
          notTTYSchedule: 1000,
        },
        cliProgress.Presets.shades_classic,
      )
    : undefined;
  const mb = (n: number) => (n / 1e6).toFixed(1);
  let done = 0;
  bar?.start(total, 0, { file: plans[0].path, done: mb(0), all: mb(total) });
  try {
    for (const plan of plans) {
      bar?.update(done, { file: plan.path });
      await downloadIntoCache(client, repoId, repoDir, commit, plan, (n) => {
        done += n;
        bar?.update(done, { done: mb(done) });
      });
    }
  } finally {
    bar?.stop();
  }
}
