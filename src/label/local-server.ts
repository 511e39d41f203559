/**
 * A server for a local page: 127.0.0.1 only, and every request, page and API alike, must name the
 * host the server is bound to (127.0.0.1:PORT, localhost:PORT or [::1]:PORT): a DNS-rebinding
 * page, whose requests carry its own host name, gets 421 and no data. Requests that change
 * anything must come from the page's own origin (`sameOrigin`). Shared by `dpo label` and
 * `dpo studio`.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { DpoError } from '../errors.js';

export interface LocalServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

/** What a request handler gets besides the request: its path, and whether its Origin (if any) is the page's. */
export interface LocalRequest {
  req: IncomingMessage;
  res: ServerResponse;
  path: string;
  /** False for a request from another origin (a cross-origin JSON POST needs a preflight this server never grants). */
  sameOrigin: boolean;
}

/** The default content security policy: no external assets, no frames, inline script, this origin's API. */
export const INLINE_PAGE_CSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'";

function headers(csp: string): Record<string, string> {
  return { 'content-security-policy': csp, 'x-content-type-options': 'nosniff', 'cache-control': 'no-store' };
}

export function send(res: ServerResponse, status: number, body: string | Uint8Array, type: string, csp = INLINE_PAGE_CSP): void {
  res.writeHead(status, { ...headers(csp), 'content-type': type });
  res.end(body);
}

export function sendJson(res: ServerResponse, status: number, value: unknown): void {
  send(res, status, JSON.stringify(value), 'application/json; charset=utf-8');
}

/** The JSON body of a request (at most `maxBody` bytes, default 64 KiB). */
export async function readJson(req: IncomingMessage, maxBody = 1 << 16): Promise<unknown> {
  if (!(req.headers['content-type'] ?? '').startsWith('application/json')) throw new DpoError('expected a JSON request');
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > maxBody) throw new DpoError('request too large');
    chunks.push(chunk as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new DpoError('request body is not valid JSON');
  }
}

/**
 * Serves `handle` on 127.0.0.1:`port` (0 picks a free port). A handler that throws answers 500,
 * or 400 for a DpoError (`status` of the error when it has one), with `{ error }`.
 */
export async function startLocalServer(
  handle: (r: LocalRequest) => Promise<void>,
  options: { port: number; onError?: (error: Error) => void; errorStatus?: (e: unknown) => number | undefined },
): Promise<LocalServer> {
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
      const sameOrigin = req.headers.origin === undefined || origins.includes(req.headers.origin);
      try {
        await handle({ req, res, path, sameOrigin });
      } catch (e) {
        const error = e as Error;
        const status = options.errorStatus?.(e) ?? (e instanceof DpoError ? 400 : 500);
        if (status >= 500) options.onError?.(error);
        if (!res.headersSent) sendJson(res, status, { error: error.message });
        else res.end();
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
