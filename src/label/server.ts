/**
 * The labelling server: the page and its JSON API on 127.0.0.1 (never another interface).
 * Requests that change the files must be JSON from the page's own origin, so another web page
 * open in the same browser cannot post decisions (a cross-origin JSON POST needs a CORS
 * preflight, which this server never grants). Every request, page and API alike, must name the
 * host the server is bound to (127.0.0.1:PORT, localhost:PORT or [::1]:PORT): a DNS-rebinding
 * page, whose requests carry its own host name, gets 421 and no data.
 */
import { DpoError } from '../errors.js';
import { LabelError } from './errors.js';
import { readJson, send, sendJson, startLocalServer, type LocalServer } from './local-server.js';
import { labelPage } from './page.js';
import type { Decision, LabelSession } from './session.js';

export type LabelServer = LocalServer;

export interface LabelServerOptions {
  /** 0 picks a free port. */
  port: number;
  title?: string;
  /** Called when a request fails in a way the page cannot show (default: ignored). */
  onError?: (error: Error) => void;
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
  return startLocalServer(
    async ({ req, res, path, sameOrigin }) => {
      if (req.method === 'GET' && (path === '/' || path === '/index.html')) return send(res, 200, page, 'text/html; charset=utf-8');
      if (req.method === 'GET' && path === '/api/state') return sendJson(res, 200, await session.state());
      if (req.method === 'POST' && (path === '/api/decide' || path === '/api/undo')) {
        if (!sameOrigin) return sendJson(res, 403, { error: 'cross-origin request refused' });
        const body = await readJson(req);
        if (path === '/api/undo') {
          const b = (typeof body === 'object' && body !== null ? body : {}) as { of?: unknown };
          return sendJson(res, 200, await session.undo(requestId(b.of, 'of')));
        }
        const { index, decision, id } = parseDecision(body);
        return sendJson(res, 200, await session.decide(index, decision, id));
      }
      return sendJson(res, 404, { error: `no such page: ${req.method} ${path}` });
    },
    {
      port: options.port,
      onError: options.onError,
      // A LabelError carries its status; other DpoErrors are the request's fault.
      errorStatus: (e) => (e instanceof LabelError ? e.status : e instanceof DpoError ? 400 : 500),
    },
  );
}
