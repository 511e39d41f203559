/** The labelling server's HTTP surface: Host checks, simultaneous and repeated requests, write failures. */
import { request } from 'node:http';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { startLabelServer, type LabelServer } from '../../src/label/server.js';
import { LabelSession } from '../../src/label/session.js';
import { LabelStore, type OpenRowFile } from '../../src/label/store.js';
import type { PromptRow } from '../../src/generate/prompts.js';
import { fullDisk } from './row-files.js';

const dir = mkdtempSync(join(tmpdir(), 'dpo-label-server-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const SECRET = 'the secret prompt';
const prompts: PromptRow[] = [SECRET, 'second'].map((p, i) => ({ text: p, prompt: p, origin: { file: 'p.jsonl', line: i + 1 } }));

let open: { server: LabelServer; store: LabelStore }[] = [];
afterEach(async () => {
  for (const o of open) {
    await o.server.close();
    await o.store.close();
  }
  open = [];
});

async function serve(output: string, openRow?: OpenRowFile): Promise<LabelServer> {
  const store = await LabelStore.open(output, { openFile: openRow });
  const session = new LabelSession({ prompts, numCompletions: 2, store, sample: async (text, k) => Array.from({ length: k }, (_, i) => ` ${text} #${i}`) });
  const server = await startLabelServer(session, { port: 0 });
  open.push({ server, store });
  return server;
}

interface Reply {
  status: number;
  body: string;
}

/** One HTTP request to 127.0.0.1:port with the given Host header (what a browser sends). */
function call(port: number, method: string, path: string, host: string, body?: unknown): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const req = request({ host: '127.0.0.1', port, method, path, headers: { host, ...(data ? { 'content-type': 'application/json' } : {}) } }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
    req.end(data);
  });
}

function rows(path: string): unknown[] {
  return existsSync(path) ? readFileSync(path, 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as unknown) : [];
}

describe('dpo label server', () => {
  it('answers only for the hosts it is bound to (DNS rebinding gets 421 and no data), page and API alike', async () => {
    const output = join(dir, 'hosts.jsonl');
    const server = await serve(output);
    const p = server.port;
    for (const host of [`127.0.0.1:${p}`, `localhost:${p}`, `LOCALHOST:${p}`, `[::1]:${p}`]) {
      expect((await call(p, 'GET', '/', host)).status).toBe(200);
      const state = await call(p, 'GET', '/api/state', host);
      expect(state.status).toBe(200);
      expect(state.body).toContain(SECRET);
    }
    for (const host of ['attacker.example', `attacker.example:${p}`, `127.0.0.1:${p + 1}`, `localhost`, `127.0.0.1.nip.io:${p}`]) {
      for (const [method, path, body] of [['GET', '/', undefined], ['GET', '/api/state', undefined], ['POST', '/api/decide', { index: 0, kind: 'tie' }], ['POST', '/api/undo', {}], ['GET', '/nope', undefined]] as const) {
        const r = await call(p, method, path, host, body);
        expect(r.status, `${method} ${path} with Host '${host}'`).toBe(421);
        expect(r.body).not.toContain(SECRET);
        expect(r.body).not.toContain('#0');
      }
    }
    expect(rows(join(dir, 'hosts.skipped.jsonl'))).toEqual([]);
  });

  it('eight simultaneous POSTs of one decision append one row: the same request id answers 200 each time, other ids 409', async () => {
    for (const ids of ['same', 'different'] as const) {
      const output = join(dir, `race-${ids}.jsonl`);
      const server = await serve(output);
      const host = `127.0.0.1:${server.port}`;
      await call(server.port, 'GET', '/api/state', host);
      const replies = await Promise.all(
        Array.from({ length: 8 }, (_, i) => call(server.port, 'POST', '/api/decide', host, { index: 0, kind: 'rank', order: i % 2 ? [0, 1] : [1, 0], id: ids === 'same' ? 'x' : `x${i}` })),
      );
      expect(rows(output)).toHaveLength(1);
      const statuses = replies.map((r) => r.status).sort();
      expect(statuses).toEqual(ids === 'same' ? Array(8).fill(200) : [200, ...Array(7).fill(409)]);
      for (const r of replies.filter((x) => x.status === 409)) expect(JSON.parse(r.body).error).toMatch(/^prompt 1 is decided already/);
    }
  });

  it('a failed write answers 507 with the reason, writes nothing, and the next try succeeds', async () => {
    const output = join(dir, 'full.jsonl');
    let full = true;
    const server = await serve(output, fullDisk(() => full));
    const host = `127.0.0.1:${server.port}`;
    await call(server.port, 'GET', '/api/state', host);
    const failed = await call(server.port, 'POST', '/api/decide', host, { index: 0, kind: 'rank', order: [0, 1], id: 'a' });
    expect(failed.status).toBe(507);
    expect(JSON.parse(failed.body).error).toContain('nothing was written: free some space and choose again');
    expect(existsSync(output) ? readFileSync(output, 'utf8') : '').toBe('');
    full = false;
    const ok = await call(server.port, 'POST', '/api/decide', host, { index: 0, kind: 'rank', order: [0, 1], id: 'a' });
    expect(ok.status).toBe(200);
    expect(rows(output)).toEqual([{ prompt: SECRET, chosen: ` ${SECRET} #0`, rejected: ` ${SECRET} #1` }]);
  });
});
