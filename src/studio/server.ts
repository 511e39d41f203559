/**
 * The `dpo studio` server: the page, the browser bundle, onnxruntime-web's wasm files, the
 * model folder's files, and tokenisation (encode and decode run here, in Node, with the model's
 * tokenizer; everything else runs in the tab). On 127.0.0.1 with label's host and origin checks.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DpoError } from '../errors.js';
import type { TextTokenizer } from '../io/tokenizer-types.js';
import { readJson, send, sendJson, startLocalServer, type LocalServer } from '../label/local-server.js';
import { browserBundle, ortWebDist } from './bundle.js';
import { STUDIO_CSP, studioPage, studioScript } from './page.js';

/** What the page asks for once (GET /api/session). */
export interface StudioSession {
  model: string;
  /** The base model folder as given (recorded in downloads). */
  modelPath: string;
  prompts: string[];
  promptIds: number[][];
  eosTokenIds: number[];
  device: 'auto' | 'webgpu' | 'cpu';
  beta: number;
  learningRate: number;
  steps: number;
  maxNewTokens: number;
  seed: number;
  /** LoRA settings for BrowserDpo (empty: PEFT's defaults); absent with `full`. */
  lora?: { r?: number; alpha?: number; dropout?: number; targetModules?: string[] | 'all-linear' };
  /** Full fine-tuning instead of LoRA. */
  full?: boolean;
  /** Files of the model folder the page may fetch (GET /model/<name>) and copies into a download. */
  files: string[];
}

/** Model folder files served to the page: what a full-model download holds besides the trained weights. */
export const MODEL_FILES = ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'generation_config.json', 'vocab.json', 'merges.txt'];
const ORT_FILE = /^ort-wasm-simd-threaded(\.[a-z]+)?\.(wasm|mjs)$/;
const MAX_IDS = 1 << 16;

function idLists(value: unknown): number[][] {
  const ids = (value as { ids?: unknown } | null)?.ids;
  if (!Array.isArray(ids) || !ids.every((l) => Array.isArray(l) && l.every((i) => Number.isInteger(i) && i >= 0 && i < 1 << 24))) {
    throw new DpoError("decode: 'ids' must be a list of token id lists");
  }
  if (ids.reduce((n: number, l: number[]) => n + l.length, 0) > MAX_IDS) throw new DpoError('decode: too many ids');
  return ids as number[][];
}

export async function startStudioServer(session: StudioSession, modelDir: string, tokenizer: TextTokenizer, options: { port: number; onError?: (e: Error) => void }): Promise<LocalServer> {
  const bundle = await browserBundle();
  const ortDir = ortWebDist();
  const page = studioPage(session.model);
  return startLocalServer(
    async ({ req, res, path, sameOrigin }) => {
      if (req.method === 'GET' && (path === '/' || path === '/index.html')) return send(res, 200, page, 'text/html; charset=utf-8', STUDIO_CSP);
      if (req.method === 'GET' && path === '/studio.js') return send(res, 200, studioScript, 'text/javascript; charset=utf-8', STUDIO_CSP);
      if (req.method === 'GET' && path === '/dpo-browser.js') return send(res, 200, bundle, 'text/javascript; charset=utf-8', STUDIO_CSP);
      if (req.method === 'GET' && path === '/api/session') return sendJson(res, 200, session);
      if (req.method === 'GET' && path === '/favicon.ico') return send(res, 204, '', 'image/x-icon', STUDIO_CSP);
      if (req.method === 'GET' && path.startsWith('/ort/') && ORT_FILE.test(path.slice(5))) {
        const type = path.endsWith('.wasm') ? 'application/wasm' : 'text/javascript; charset=utf-8';
        return send(res, 200, await readFile(join(ortDir, path.slice(5))), type, STUDIO_CSP);
      }
      if (req.method === 'GET' && path.startsWith('/model/') && session.files.includes(path.slice(7))) {
        return send(res, 200, await readFile(join(modelDir, path.slice(7))), path.endsWith('.json') ? 'application/json' : 'application/octet-stream', STUDIO_CSP);
      }
      if (req.method === 'POST' && path === '/api/decode') {
        if (!sameOrigin) return sendJson(res, 403, { error: 'cross-origin request refused' });
        const ids = idLists(await readJson(req));
        return sendJson(res, 200, { texts: ids.map((l) => tokenizer.decode(l, true)) });
      }
      return sendJson(res, 404, { error: `no such page: ${req.method} ${path}` });
    },
    { port: options.port, onError: options.onError },
  );
}

/** The files of `dir` that the page may fetch. */
export function servedModelFiles(dir: string): string[] {
  return MODEL_FILES.filter((f) => existsSync(join(dir, f)));
}
