/**
 * Talking to the Hugging Face hub (or a mirror at $HF_ENDPOINT) through @huggingface/hub, and
 * writing what it returns into the cache layout atomically: blobs are streamed to a temp file,
 * size-checked and renamed; snapshot entries are symlinks (plain copies where symlinks fail).
 */
import { copyFile, mkdir, open, rename, rm, stat, symlink } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { downloadFile, fileDownloadInfo, HubApiError, listFiles, type FileDownloadInfoOutput } from '@huggingface/hub';
import { DpoError } from '../errors.js';
import { tempSibling, writeBytesAtomic } from './atomic.js';

export type FetchFn = typeof fetch;

export interface HubClient {
  endpoint: string;
  fetch: FetchFn;
}

/**
 * A fetch that sends the token only to the hub's own origin. Doing this here, rather than via
 * @huggingface/hub's accessToken, keeps the token off CDN redirects and also accepts tokens of
 * mirrors that do not start with "hf_" (the library rejects those).
 */
export function hubClient(endpoint: string, token: string | undefined, baseFetch: FetchFn = fetch): HubClient {
  const origin = new URL(endpoint).origin;
  const authed: FetchFn = async (input, init) => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    if (!token || url.origin !== origin) return baseFetch(input, init);
    const headers = new Headers(init?.headers ?? (input instanceof Request ? input.headers : undefined));
    if (!headers.has('authorization')) headers.set('authorization', `Bearer ${token}`);
    return baseFetch(input, { ...init, headers });
  };
  return { endpoint: endpoint.replace(/\/+$/, ''), fetch: authed };
}

function describeFailure(client: HubClient, what: string, e: unknown): DpoError {
  if (e instanceof DpoError) return e;
  if (e instanceof HubApiError) {
    if (e.statusCode === 401 || e.statusCode === 403) {
      return new DpoError(`${what}: access denied by ${client.endpoint} (HTTP ${e.statusCode}); the repository may be private or gated: set HF_TOKEN`);
    }
    return new DpoError(`${what}: ${client.endpoint} answered HTTP ${e.statusCode}`);
  }
  const cause = (e as { cause?: { code?: string; message?: string } } | undefined)?.cause;
  if (e instanceof TypeError && cause) {
    return new DpoError(
      `${what}: cannot reach ${client.endpoint} (${cause.code ?? cause.message}); set HF_HUB_OFFLINE=1 to use only the local cache`,
    );
  }
  return new DpoError(`${what}: download failed (${e instanceof Error ? e.message : String(e)})`);
}

/** The commit a revision points to, and the repository's file list when the hub gives one. */
export async function fetchRepoInfo(
  client: HubClient,
  repoId: string,
  revision: string,
): Promise<{ commit: string; files: string[] | undefined }> {
  const what = `model ${repoId}@${revision}`;
  const url = `${client.endpoint}/api/models/${repoId}/revision/${encodeURIComponent(revision)}`;
  let response: Response;
  try {
    response = await client.fetch(url, { headers: { accept: 'application/json' } });
  } catch (e) {
    throw describeFailure(client, what, e);
  }
  if (response.status === 401 || response.status === 403 || response.status === 404) {
    await response.body?.cancel();
    throw new DpoError(
      `${what}: not found on ${client.endpoint} (HTTP ${response.status}); check the name and revision, or set HF_TOKEN if it is private or gated`,
    );
  }
  if (!response.ok) {
    await response.body?.cancel();
    throw new DpoError(`${what}: ${client.endpoint} answered HTTP ${response.status} for ${url}`);
  }
  const body = (await response.json().catch(() => ({}))) as { sha?: unknown; siblings?: unknown };
  if (typeof body.sha !== 'string' || !/^[0-9a-f]{40}$/.test(body.sha)) {
    throw new DpoError(`${what}: ${url} returned no commit sha`);
  }
  const files = Array.isArray(body.siblings)
    ? body.siblings.map((s: { rfilename?: unknown }) => s?.rfilename).filter((f): f is string => typeof f === 'string')
    : undefined;
  return { commit: body.sha, files };
}

/** The repository's top-level files at `commit`, for hubs whose revision API lists no siblings. */
export async function listRepoFiles(client: HubClient, repoId: string, commit: string): Promise<string[]> {
  const files: string[] = [];
  try {
    for await (const entry of listFiles({ repo: { type: 'model', name: repoId }, revision: commit, hubUrl: client.endpoint, fetch: client.fetch })) {
      if (entry.type === 'file') files.push(entry.path);
    }
  } catch (e) {
    throw describeFailure(client, `model ${repoId}@${commit}: listing files`, e);
  }
  return files;
}

export interface PlannedFile {
  path: string;
  size: number;
  /** Blob name: the LFS sha256 or git blob id, without quotes. */
  etag: string;
  info: FileDownloadInfoOutput;
}

/** Size and etag of one file at `commit`; null when the repository has no such file. */
export async function planFile(client: HubClient, repoId: string, commit: string, path: string): Promise<PlannedFile | null> {
  let info: FileDownloadInfoOutput | null;
  try {
    info = await fileDownloadInfo({ repo: { type: 'model', name: repoId }, path, revision: commit, hubUrl: client.endpoint, fetch: client.fetch });
  } catch (e) {
    if (e instanceof HubApiError && e.statusCode === 404) return null;
    throw describeFailure(client, `${repoId}/${path}`, e);
  }
  if (!info) return null;
  const etag = info.etag.replace(/^W\//, '').replace(/"/g, '');
  if (!/^[\w.-]+$/.test(etag)) throw new DpoError(`${repoId}/${path}: ${client.endpoint} sent an unusable ETag "${info.etag}"`);
  return { path, size: info.size, etag, info };
}

/** Point snapshots/<commit>/<path> at the blob: a relative symlink, or a copy where links fail. */
async function linkIntoSnapshot(blobPath: string, pointer: string): Promise<void> {
  await mkdir(dirname(pointer), { recursive: true });
  const tmp = tempSibling(pointer, 'link');
  try {
    await symlink(relative(dirname(pointer), blobPath), tmp);
  } catch {
    // Windows without developer mode cannot create symlinks; huggingface_hub copies there too.
    await copyFile(blobPath, tmp);
  }
  try {
    await rename(tmp, pointer);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}

/** Download one planned file into the cache (skipping the transfer when the blob exists). */
export async function downloadIntoCache(
  client: HubClient,
  repoId: string,
  repoDir: string,
  commit: string,
  file: PlannedFile,
  onBytes: (n: number) => void,
): Promise<void> {
  const blobPath = join(repoDir, 'blobs', file.etag);
  const pointer = join(repoDir, 'snapshots', commit, file.path);
  const existing = await stat(blobPath).catch(() => undefined);
  if (existing?.size === file.size) {
    onBytes(file.size);
    await linkIntoSnapshot(blobPath, pointer);
    return;
  }
  await mkdir(dirname(blobPath), { recursive: true });
  const what = `${repoId}/${file.path}`;
  const tmp = tempSibling(blobPath, 'incomplete');
  const handle = await open(tmp, 'wx');
  let written = 0;
  try {
    const blob = await downloadFile({
      repo: { type: 'model', name: repoId },
      path: file.path,
      revision: commit,
      hubUrl: client.endpoint,
      fetch: client.fetch,
      downloadInfo: file.info,
    });
    if (!blob) throw new DpoError(`${what}: disappeared from ${client.endpoint} during the download`);
    for await (const chunk of blob.stream() as unknown as AsyncIterable<Uint8Array>) {
      await handle.write(chunk);
      written += chunk.length;
      onBytes(chunk.length);
    }
    if (written !== file.size) {
      throw new DpoError(`${what}: download incomplete (${written} of ${file.size} bytes)`);
    }
    await handle.sync();
    await handle.close();
    await rename(tmp, blobPath);
  } catch (e) {
    await handle.close().catch(() => undefined);
    await rm(tmp, { force: true });
    throw describeFailure(client, what, e);
  }
  await linkIntoSnapshot(blobPath, pointer);
}

/** Record that `revision` now points at `commit` (refs/<revision>), as huggingface_hub does. */
export async function writeRef(repoDir: string, revision: string, commit: string): Promise<void> {
  if (revision === commit) return;
  const refPath = join(repoDir, 'refs', revision);
  await mkdir(dirname(refPath), { recursive: true });
  await writeBytesAtomic(refPath, commit);
}
