/**
 * `runStudio`: check the model folder, tokenise the prompts, and serve the studio page, where the
 * tab labels, trains (DPO on WebGPU or wasm), compares and downloads. The caller stops it with
 * `close()` (the CLI on Ctrl-C).
 */
import { existsSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { TRAIN_PROMPTS } from '../data/builtin-prompts.js';
import { DpoError } from '../errors.js';
import { promptsFrom } from '../generate/prompts.js';
import { readJsonObject } from '../io/json-file.js';
import { loadTokenizer } from '../io/tokenizer.js';
import type { LocalServer } from '../label/local-server.js';
import { PACKAGE_ROOT } from './bundle.js';
import { servedModelFiles, startStudioServer, type StudioSession } from './server.js';

/** The shipped model (assets/brown-gpt2), the page's default. */
export const SHIPPED_MODEL = join(PACKAGE_ROOT, 'assets', 'brown-gpt2');
export const DEFAULT_STUDIO_PORT = 8766;

export interface StudioOptions {
  /** A model folder with config.json, one model.safetensors and tokenizer.json (default: the shipped model). */
  model?: string;
  /** Prompts file or folder (default: the built-in sentiment prompts). */
  prompts?: string;
  port?: number;
  /** Where the tab trains: auto (WebGPU when the browser has an adapter, else wasm), webgpu, or cpu (wasm). */
  device?: 'auto' | 'webgpu' | 'cpu';
  beta?: number;
  learningRate?: number;
  /** Optimizer steps per press of t (default 10). */
  steps?: number;
  maxNewTokens?: number;
  seed?: number;
  /** LoRA settings over PEFT's defaults (the tab trains LoRA unless `full`). */
  lora?: { r?: number; alpha?: number; dropout?: number; targetModules?: string[] | 'all-linear' };
  /** Full fine-tuning instead of LoRA. */
  full?: boolean;
  log?: (message: string) => void;
}

export interface RunningStudio extends LocalServer {
  session: StudioSession;
}

export async function runStudio(options: StudioOptions = {}): Promise<RunningStudio> {
  const dir = resolve(options.model ?? SHIPPED_MODEL);
  if (!existsSync(join(dir, 'config.json'))) throw new DpoError(`--model ${options.model ?? dir}: no config.json (give a model folder)`);
  if (!existsSync(join(dir, 'model.safetensors'))) {
    throw new DpoError(`--model ${options.model ?? dir}: no model.safetensors (the studio loads one unsharded safetensors file; LoRA adapter folders are not supported here)`);
  }
  const tokenizer = await loadTokenizer(dir);
  const config = await readJsonObject(join(dir, 'config.json'));
  const rows = await promptsFrom(options.prompts ?? TRAIN_PROMPTS, tokenizer, '--prompts', options.log ?? (() => {}));
  const eos = new Set([tokenizer.eosTokenId, ...[config.eos_token_id].flat().filter((x): x is number => typeof x === 'number')]);
  const session: StudioSession = {
    model: basename(dir),
    modelPath: dir,
    prompts: rows.map((r) => r.text),
    promptIds: rows.map((r) => (tokenizer.bosTokenId !== undefined ? [tokenizer.bosTokenId] : []).concat(tokenizer.encode(r.text))),
    eosTokenIds: [...eos],
    device: options.device ?? 'auto',
    beta: options.beta ?? 0.1,
    learningRate: options.learningRate ?? (options.full ? 1e-4 : 1e-3),
    steps: options.steps ?? 10,
    maxNewTokens: options.maxNewTokens ?? 24,
    seed: options.seed ?? 0,
    ...(options.full ? { full: true } : { lora: options.lora ?? {} }),
    files: servedModelFiles(dir),
  };
  const server = await startStudioServer(session, dir, tokenizer, { port: options.port ?? DEFAULT_STUDIO_PORT, onError: (e) => options.log?.(`dpo studio: ${e.message}`) });
  return { ...server, session };
}
