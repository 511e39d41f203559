/**
 * The Hugging Face hub cache layout, shared with huggingface_hub (Python) and transformers:
 *
 *   <cache>/models--org--name/refs/<revision>          file holding the commit sha
 *   <cache>/models--org--name/snapshots/<sha>/<file>   symlink to ../../blobs/<etag>, or a plain file
 *   <cache>/models--org--name/blobs/<etag>             file contents
 */
import { readFile, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { DpoError } from '../errors.js';

export type Env = Readonly<Record<string, string | undefined>>;

export interface ModelRef {
  /** "org/name" (or a bare legacy name such as "gpt2"). */
  repoId: string;
  /** Branch, tag or commit sha; "main" when not given. */
  revision: string;
}

const REPO_ID = /^[A-Za-z0-9][\w.-]*(\/[A-Za-z0-9][\w.-]*)?$/;
export const COMMIT_SHA = /^[0-9a-f]{40}$/;

/** Parse "org/name" or "org/name@revision". */
export function parseModelRef(ref: string): ModelRef {
  const at = ref.indexOf('@');
  const repoId = at < 0 ? ref : ref.slice(0, at);
  const revision = at < 0 ? 'main' : ref.slice(at + 1);
  // The revision names a file under refs/, so it must not be able to climb out of it.
  const badRevision = !/^[\w.\-/]+$/.test(revision) || revision.split('/').some((p) => p === '' || p === '.' || p === '..');
  if (!REPO_ID.test(repoId) || repoId.includes('..') || badRevision) {
    throw new DpoError(`"${ref}" is neither an existing folder nor a Hugging Face model id like "org/name" or "org/name@revision"`);
  }
  return { repoId, revision };
}

/** $HF_HUB_CACHE, else $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub. */
export function hubCacheDir(env: Env = process.env): string {
  const explicit = env.HF_HUB_CACHE ?? env.HUGGINGFACE_HUB_CACHE;
  if (explicit) return explicit;
  const home = env.HF_HOME ?? join(env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'huggingface');
  return join(home, 'hub');
}

/** huggingface_hub's truthy spellings of HF_HUB_OFFLINE. */
export function isOffline(env: Env = process.env): boolean {
  return ['1', 'ON', 'YES', 'TRUE'].includes((env.HF_HUB_OFFLINE ?? '').toUpperCase());
}

export function repoCacheDir(cacheDir: string, repoId: string): string {
  return join(cacheDir, `models--${repoId.split('/').join('--')}`);
}

export function snapshotDir(repoDir: string, commit: string): string {
  return join(repoDir, 'snapshots', commit);
}

/** The commit a revision points to in the cache: the sha itself, or the content of refs/<revision>. */
export async function cachedCommit(repoDir: string, revision: string): Promise<string | undefined> {
  if (COMMIT_SHA.test(revision)) return revision;
  const text = await readFile(join(repoDir, 'refs', revision), 'utf-8').catch(() => undefined);
  const sha = text?.trim();
  return sha ? sha : undefined;
}

/** True for a readable regular file, following symlinks (a dangling blob link counts as missing). */
export async function isCachedFile(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined))?.isFile() ?? false;
}
