import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { lstat, mkdir, mkdtemp, readFile, readdir, readlink, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DpoError } from '../../src/errors.js';
import { loadCheckpoint } from '../../src/io/hf-folder.js';
import { hubCacheDir, parseModelRef, resolveModel } from '../../src/io/hub.js';
import { buildSafetensorsHeader } from '../../src/io/safetensors-write.js';

const SHA_MAIN = 'a'.repeat(40);
const SHA_V1 = 'b'.repeat(40);

function safetensorsBytes(values: number[]): Buffer {
  const tensors = { w: { data: new Float32Array(values), shape: [values.length] } };
  const { header } = buildSafetensorsHeader(tensors);
  return Buffer.concat([header, Buffer.from(new Float32Array(values).buffer)]);
}

/** Fake repositories: repoId -> revision -> { sha, files }. */
const repos: Record<string, Record<string, { sha: string; files: Record<string, Buffer> }>> = {
  'org/tiny': {
    main: {
      sha: SHA_MAIN,
      files: {
        'config.json': Buffer.from('{"model_type":"gpt2"}'),
        'model.safetensors': safetensorsBytes([1, 2, 3]),
        'tokenizer.json': Buffer.from('{"model":{}}'),
        'tokenizer_config.json': Buffer.from('{"eos_token":"x"}'),
        'README.md': Buffer.from('# tiny'),
      },
    },
  },
  'org/broken': {
    main: {
      sha: 'd'.repeat(40),
      files: {
        'config.json': Buffer.from('{}'),
        'model.safetensors': safetensorsBytes([1]),
        'tokenizer.json': Buffer.from('{}'),
      },
    },
  },
  'org/sharded': {
    v1: {
      sha: SHA_V1,
      files: {
        'config.json': Buffer.from('{"model_type":"llama"}'),
        'model.safetensors.index.json': Buffer.from(
          JSON.stringify({ weight_map: { w: 'model-00001-of-00002.safetensors', v: 'model-00002-of-00002.safetensors' } }),
        ),
        'model-00001-of-00002.safetensors': safetensorsBytes([4, 5]),
        'model-00002-of-00002.safetensors': Buffer.from(
          (() => {
            const v = { v: { data: new Float32Array([6]), shape: [1] } };
            return Buffer.concat([buildSafetensorsHeader(v).header, Buffer.from(new Float32Array([6]).buffer)]);
          })(),
        ),
        'tokenizer.json': Buffer.from('{"model":{}}'),
        'generation_config.json': Buffer.from('{"max_length":5}'),
      },
    },
  },
};

interface Seen {
  method: string;
  url: string;
  auth: string | undefined;
}
const seen: Seen[] = [];
let server: Server;
let endpoint: string;
let cache: string;
const caches: string[] = [];

function findRevision(repoId: string, revision: string) {
  const revs = repos[repoId];
  if (!revs) return undefined;
  return revs[revision] ?? Object.values(revs).find((r) => r.sha === revision);
}

/** Mimics the hub endpoints @huggingface/hub calls: repo info, resolve (HEAD/GET, Range). */
function handle(req: IncomingMessage, res: import('node:http').ServerResponse): void {
  const url = new URL(req.url!, 'http://x');
  seen.push({ method: req.method!, url: url.pathname, auth: req.headers.authorization });
  const tree = /^\/api\/models\/([^/]+\/[^/]+)\/tree\/([^/]+)$/.exec(url.pathname);
  if (tree) {
    const rev = findRevision(tree[1], decodeURIComponent(tree[2]));
    const entries = Object.entries(rev?.files ?? {}).map(([path, body]) => ({ type: 'file', path, size: body.length, oid: 'x' }));
    res.writeHead(rev ? 200 : 404, { 'content-type': 'application/json' }).end(JSON.stringify(entries));
    return;
  }
  const api = /^\/api\/models\/([^/]+\/[^/]+)\/revision\/([^/]+)$/.exec(url.pathname);
  if (api) {
    const rev = findRevision(api[1], decodeURIComponent(api[2]));
    if (!rev) {
      res.writeHead(404, { 'content-type': 'application/json', 'x-error-code': 'RepoNotFound' }).end('{"error":"Repository not found"}');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(
      // Like some mirrors, the fake hub omits siblings for org/sharded so that listFiles is used.
      JSON.stringify({
        id: api[1],
        sha: rev.sha,
        ...(api[1] === 'org/sharded' ? {} : { siblings: Object.keys(rev.files).map((rfilename) => ({ rfilename })) }),
      }),
    );
    return;
  }
  const resolve = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(url.pathname);
  const rev = resolve && findRevision(resolve[1], decodeURIComponent(resolve[2]));
  const body = rev?.files[resolve![3]];
  if (!rev || !body) {
    res.writeHead(404, { 'x-error-code': 'EntryNotFound' }).end('Entry not found');
    return;
  }
  const etag = `"${createHash('sha256').update(body).digest('hex')}"`;
  const headers = { etag, 'x-repo-commit': rev.sha, 'accept-ranges': 'bytes', 'content-type': 'application/octet-stream' };
  const range = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
  if (!range && resolve![1] === 'org/broken' && resolve![3] === 'model.safetensors') {
    res.writeHead(500, { 'content-type': 'text/plain' }).end('storage backend down');
    return;
  }
  if (range) {
    const start = Number(range[1]);
    const end = Math.min(Number(range[2]), body.length - 1);
    res.writeHead(206, { ...headers, 'content-range': `bytes ${start}-${end}/${body.length}` });
    res.end(req.method === 'HEAD' ? undefined : body.subarray(start, end + 1));
    return;
  }
  res.writeHead(200, { ...headers, 'content-length': String(body.length) });
  res.end(req.method === 'HEAD' ? undefined : body);
}

beforeAll(async () => {
  server = createServer(handle);
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise((ok) => server.close(ok));
});
beforeEach(async () => {
  seen.length = 0;
  cache = await mkdtemp(join(tmpdir(), 'dpo-hub-'));
  caches.push(cache);
});

function env(extra: Record<string, string> = {}) {
  return { HF_HUB_CACHE: cache, HF_ENDPOINT: endpoint, ...extra };
}

describe('model references and the cache location', () => {
  it('parses org/name@revision', () => {
    expect(parseModelRef('org/name')).toEqual({ repoId: 'org/name', revision: 'main' });
    expect(parseModelRef('org/name@v1.0')).toEqual({ repoId: 'org/name', revision: 'v1.0' });
    expect(parseModelRef('gpt2')).toEqual({ repoId: 'gpt2', revision: 'main' });
    expect(parseModelRef('org/name@refs/pr/1')).toEqual({ repoId: 'org/name', revision: 'refs/pr/1' });
    expect(() => parseModelRef('org/name@../../x')).toThrow(DpoError);
    expect(() => parseModelRef('org/name@')).toThrow(DpoError);
    expect(() => parseModelRef('a b/c')).toThrow(/neither an existing folder nor a Hugging Face model id/);
  });

  it('follows HF_HUB_CACHE, then HF_HOME/hub, then ~/.cache/huggingface/hub', () => {
    expect(hubCacheDir({ HF_HUB_CACHE: '/c', HF_HOME: '/h' })).toBe('/c');
    expect(hubCacheDir({ HF_HOME: '/h' })).toBe(join('/h', 'hub'));
    expect(hubCacheDir({})).toMatch(/[/\\]\.cache[/\\]huggingface[/\\]hub$/);
  });

  it('uses an existing local folder as is, and rejects a missing path', async () => {
    expect(await resolveModel(cache, { env: env() })).toEqual({ dir: cache, source: 'local' });
    await expect(resolveModel('./no/such/folder', { env: env() })).rejects.toThrow(/no\/such\/folder: model folder does not exist/);
    expect(seen).toEqual([]);
  });
});

describe('downloading into the cache', () => {
  it('downloads the needed files with the token, lays them out like huggingface_hub, then uses the cache only', async () => {
    const resolved = await resolveModel('org/tiny', { env: env({ HF_TOKEN: 'hf_secret' }) });
    const repoDir = join(cache, 'models--org--tiny');
    expect(resolved).toEqual({ dir: join(repoDir, 'snapshots', SHA_MAIN), source: 'download', repoId: 'org/tiny', revision: 'main', commit: SHA_MAIN });
    expect(await readFile(join(repoDir, 'refs', 'main'), 'utf-8')).toBe(SHA_MAIN);
    expect((await readdir(resolved.dir)).sort()).toEqual(['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']);
    const link = join(resolved.dir, 'model.safetensors');
    expect((await lstat(link)).isSymbolicLink()).toBe(true);
    const body = repos['org/tiny'].main.files['model.safetensors'];
    expect(await readlink(link)).toBe(join('..', '..', 'blobs', createHash('sha256').update(body).digest('hex')));
    expect((await readdir(join(repoDir, 'blobs'))).every((n) => /^[0-9a-f]{64}$/.test(n))).toBe(true);
    const ck = await loadCheckpoint(resolved.dir);
    expect(Array.from(ck.tensors.get('w')!.data)).toEqual([1, 2, 3]);

    if (process.env.DPO_DEBUG_HUB) console.log(seen);
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.every((s) => s.auth === 'Bearer hf_secret')).toBe(true);
    expect(seen.some((s) => s.url === '/api/models/org/tiny/revision/main')).toBe(true);
    expect(seen.some((s) => s.url === '/org/tiny/resolve/' + SHA_MAIN + '/model.safetensors')).toBe(true);
    expect(seen.some((s) => s.url.endsWith('README.md') || s.url.endsWith('special_tokens_map.json'))).toBe(false);

    seen.length = 0;
    const again = await resolveModel('org/tiny', { env: env({ HF_TOKEN: 'hf_secret' }) });
    expect(again).toMatchObject({ dir: resolved.dir, source: 'cache', commit: SHA_MAIN });
    const bySha = await resolveModel(`org/tiny@${SHA_MAIN}`, { env: env({ HF_HUB_OFFLINE: '1' }) });
    expect(bySha.dir).toBe(resolved.dir);
    expect(seen).toEqual([]);
  });

  it('downloads a sharded model at a revision, with a progress bar', async () => {
    let output = '';
    const progressStream = new Writable({
      write(chunk, _enc, done) {
        output += String(chunk);
        done();
      },
    });
    const resolved = await resolveModel('org/sharded@v1', { env: env(), progress: true, progressStream });
    expect(resolved.commit).toBe(SHA_V1);
    expect((await readdir(resolved.dir)).sort()).toEqual([
      'config.json',
      'generation_config.json',
      'model-00001-of-00002.safetensors',
      'model-00002-of-00002.safetensors',
      'model.safetensors.index.json',
      'tokenizer.json',
    ]);
    expect(await readFile(join(cache, 'models--org--sharded', 'refs', 'v1'), 'utf-8')).toBe(SHA_V1);
    const ck = await loadCheckpoint(resolved.dir);
    expect(Array.from(ck.tensors.get('v')!.data)).toEqual([6]);
    expect(ck.generationConfig).toEqual({ max_length: 5 });
    expect(output).toMatch(/downloading org\/sharded/);
    expect(output).toMatch(/100%/);
    expect(seen.every((s) => s.auth === undefined)).toBe(true);
    expect(seen.some((s) => s.url === `/api/models/org/sharded/tree/${SHA_V1}`)).toBe(true);
  });

  it('accepts a snapshot of plain files (no blobs, no symlinks) without contacting the hub', async () => {
    const snap = join(cache, 'models--org--plain', 'snapshots', 'c'.repeat(40));
    await mkdir(snap, { recursive: true });
    await mkdir(join(cache, 'models--org--plain', 'refs'));
    await writeFile(join(cache, 'models--org--plain', 'refs', 'main'), 'c'.repeat(40) + '\n');
    await writeFile(join(snap, 'config.json'), '{}');
    await writeFile(join(snap, 'tokenizer.json'), '{}');
    await writeFile(join(snap, 'model.safetensors'), safetensorsBytes([9]));
    const resolved = await resolveModel('org/plain', { env: { HF_HUB_CACHE: cache, HF_ENDPOINT: 'http://127.0.0.1:9' } });
    expect(resolved).toMatchObject({ dir: snap, source: 'cache' });
    expect(seen).toEqual([]);
  });

  it('offline with nothing cached: one line naming the missing files and the folder', async () => {
    const err = await resolveModel('org/tiny', { env: env({ HF_HUB_OFFLINE: '1' }) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DpoError);
    const message = (err as Error).message;
    expect(message).toContain('HF_HUB_OFFLINE is set: missing config.json, tokenizer.json, model.safetensors');
    expect(message).toContain(join(cache, 'models--org--tiny', 'snapshots', 'local'));
    expect(message).toContain(join(cache, 'models--org--tiny', 'refs', 'main'));
    expect(message).not.toContain('\n');
    expect(seen).toEqual([]);
  });

  it('a failed download leaves no partial blob or snapshot entry behind', async () => {
    await expect(resolveModel('org/broken', { env: env() })).rejects.toThrow(/org\/broken\/model.safetensors: download failed/);
    const repoDir = join(cache, 'models--org--broken');
    const blobs = await readdir(join(repoDir, 'blobs'));
    expect(blobs.length).toBe(1); // config.json and tokenizer.json share one blob ('{}'); no temp files
    expect(blobs.every((n) => /^[0-9a-f]{64}$/.test(n))).toBe(true);
    expect((await readdir(join(repoDir, 'snapshots', 'd'.repeat(40)))).sort()).toEqual(['config.json', 'tokenizer.json']);
    await expect(readdir(join(repoDir, 'refs'))).rejects.toThrow();
  });

  it('reports unknown repositories and unreachable hubs clearly', async () => {
    await expect(resolveModel('org/missing', { env: env() })).rejects.toThrow(
      /model org\/missing@main: not found on http:\/\/127\.0\.0\.1:\d+ \(HTTP 404\)/,
    );
    await expect(resolveModel('org/tiny@nope', { env: env() })).rejects.toThrow(/org\/tiny@nope: not found/);
    await expect(resolveModel('org/tiny', { env: { HF_HUB_CACHE: cache, HF_ENDPOINT: 'http://127.0.0.1:9' } })).rejects.toThrow(
      /cannot reach http:\/\/127\.0\.0\.1:9 .*HF_HUB_OFFLINE=1/,
    );
  });
});

afterAll(async () => {
  for (const c of caches) await rm(c, { recursive: true, force: true });
});
