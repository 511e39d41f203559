/**
 * The labelling server: the page and its JSON API on 127.0.0.1 (never another interface).
 * Requests that change the files must be JSON from the page's own origin, so another web page
 * open in the same browser cannot post decisions (a cross-origin JSON POST needs a CORS
 * preflight, which this server never grants). Every request, page and API alike, must name the
 * host the server is bound to (127.0.0.1:PORT, localhost:PORT or [::1]:PORT): a DNS-rebinding
 * page, whose requests carry its own host name, gets 421 and no data.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { DpoError } from '../errors.js';
import { LabelError } from './errors.js';
import { labelPage } from './page.js';
import type { Decision, LabelSession } from './session.js';

export interface LabelServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

export interface LabelServerOptions {
  /** 0 picks a free port. */
  port: number;
  title?: string;
  /** Called when a request fails in a way the page cannot show (default: ignored). */
  onError?: (error: Error) => void;
}

const MAX_BODY = 1 << 16;

const SECURITY_HEADERS = {
  // No external assets, no frames, nothing but this origin's API.
  'content-security-policy': "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'cache-control': 'no-store',
};

function send(res: ServerResponse, status: number, body: string, type: string): void {
  res.writeHead(status, { ...SECURITY_HEADERS, 'content-type': type });
  res.end(body);
}

function sendJson(res: ServerResponse, status: number, value: unknown): void {
  send(res, status, JSON.stringify(value), 'application/json; charset=utf-8');
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  if (!(req.headers['content-type'] ?? '').startsWith('application/json')) throw new DpoError('expected a JSON request');
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new DpoError('request too large');
    chunks.push(chunk as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new DpoError('request body is not valid JSON');
  }
}

/** The request id a decision or undo carries (`id` / `of`), checked; undefined when absent. */
function requestId(value: unknown, key: string): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value.length === 0 || value.length > 100) throw new DpoError(`'${key}' must be a request id string of 1 to 100 characters`);
  return value;
}

function parseDecision(body: unknown): { index: number; decision: Decision; id?: string } {
  const b = (typeof body === 'object' && body !== null ? body : {}) as { index?: unknown; kind?: unknown; order?: unknown; id?: unknown };
  if (typeof b.index !== 'number' || !Number.isInteger(b.index)) throw new DpoError("decision: 'index' must be an integer");
  const id = requestId(b.id, 'id');
  if (b.kind === 'tie' || b.kind === 'skip') return { index: b.index, decision: { kind: b.kind }, id };
  if (b.kind === 'rank' && Array.isArray(b.order) && b.order.every((i) => typeof i === 'number')) {
    return { index: b.index, decision: { kind: 'rank', order: b.order as number[] }, id };
  }
  throw new DpoError("decision: 'kind' must be 'rank' (with an 'order' list), 'tie' or 'skip'");
}

/** Serves `session` on 127.0.0.1:`port`. */
export async function startLabelServer(session: LabelSession, options: LabelServerOptions): Promise<LabelServer> {
  const page = labelPage(options.title);
  let origins: string[] = [];
  let hosts: string[] = [];
  let port = 0;
  const server = createServer((req, res) => {
    void (async () => {
      const path = (req.url ?? '/').split('?')[0];
      if (!hosts.includes((req.headers.host ?? '').toLowerCase())) {
        req.resume();
        return send(res, 421, `this server answers only for ${hosts.join(', ')} (forwarding it over SSH? keep the port number: ssh -L ${port}:127.0.0.1:${port} ...)\n`, 'text/plain; charset=utf-8');
      }
      try {
        if (req.method === 'GET' && (path === '/' || path === '/index.html')) return send(res, 200, page, 'text/html; charset=utf-8');
        if (req.method === 'GET' && path === '/api/state') return sendJson(res, 200, await session.state());
        if (req.method === 'POST' && (path === '/api/decide' || path === '/api/undo')) {
          if (req.headers.origin !== undefined && !origins.includes(req.headers.origin)) return sendJson(res, 403, { error: 'cross-origin request refused' });
          const body = await readJson(req);
          if (path === '/api/undo') {
            const b = (typeof body === 'object' && body !== null ? body : {}) as { of?: unknown };
            return sendJson(res, 200, await session.undo(requestId(b.of, 'of')));
          }
          const { index, decision, id } = parseDecision(body);
          return sendJson(res, 200, await session.decide(index, decision, id));
        }
        return sendJson(res, 404, { error: `no such page: ${req.method} ${path}` });
      } catch (e) {
        const error = e as Error;
        if (!(e instanceof DpoError) || (e instanceof LabelError && e.status >= 500)) options.onError?.(error);
        return sendJson(res, e instanceof LabelError ? e.status : e instanceof DpoError ? 400 : 500, { error: error.message });
      }
    })();
  });
  await new Promise<void>((resolve, reject) => {
    const fail = (e: NodeJS.ErrnoException): void => {
      reject(e.code === 'EADDRINUSE' ? new DpoError(`--port ${options.port}: 127.0.0.1:${options.port} is in use; pick another port (0: any free one)`) : e);
    };
    server.once('error', fail);
    server.listen(options.port, '127.0.0.1', () => {
      server.off('error', fail);
      resolve();
    });
  });
  port = (server.address() as AddressInfo).port;
  hosts = [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`];
  origins = hosts.map((h) => `http://${h}`);
  return {
    url: `${origins[0]}/`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
