/**
 * `runLabel`: load a model and a prompt file, open (or resume) the output, and serve the
 * labelling page. The caller stops it with `close()` (the CLI on Ctrl-C).
 */
import { mkdir, realpath } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import type { OnBadRow } from '../data/types.js';
import { DpoError } from '../errors.js';
import { Generator } from '../generate/generator.js';
import { loadPrompts } from '../generate/prompts.js';
import { resolveSampling } from '../generate/text.js';
import type { BadRow } from '../data/types.js';
import { loadModelOrAdapter } from '../models/load-model.js';
import { startLabelServer } from './server.js';
import { LabelSession } from './session.js';
import { LabelStore, skippedPath } from './store.js';

export interface LabelOptions {
  /** Model folder, hub id or LoRA adapter folder that samples the completions. */
  model: string;
  /** Prompt file or folder ({"prompt": ...} or conversational rows). */
  prompts: string;
  /** Preference JSONL to write (appended to, when it exists: resume). */
  output: string;
  /** Completions per prompt (default 2; > 2 gives rankings). */
  numCompletions?: number;
  /** Port on 127.0.0.1 (default 8765; 0: any free port). */
  port?: number;
  /** Sampling: defaults from generation_config.json, else temperature 1, top-k 50, top-p 1, 64 tokens. */
  maxNewTokens?: number;
  temperature?: number;
  topK?: number;
  topP?: number;
  maxPromptTokens?: number;
  seed?: number;
  threads?: number;
  onBadRow?: OnBadRow;
}

export interface RunningLabel {
  url: string;
  session: LabelSession;
  /** Prompt rows left out (with onBadRow 'skip'). */
  skippedRows: BadRow[];
  close(): Promise<void>;
}

export const DEFAULT_LABEL_PORT = 8765;

export async function runLabel(options: LabelOptions): Promise<RunningLabel> {
  const numCompletions = options.numCompletions ?? 2;
  if (!Number.isInteger(numCompletions) || numCompletions < 2 || numCompletions > 9) {
    throw new DpoError(`--num-completions: expected an integer from 2 to 9 (one key each), got ${numCompletions}`);
  }
  // The output is checked (and resumed) before the model is loaded: a bad file fails fast.
  const promptsPath = await realpath(options.prompts).catch(() => resolve(options.prompts));
  for (const written of [options.output, skippedPath(options.output)]) {
    if ((await realpath(written).catch(() => resolve(written))) === promptsPath) {
      throw new DpoError(`--output: ${written} is the prompts file; choose another output file`);
    }
  }
  await mkdir(dirname(options.output), { recursive: true });
  const store = await LabelStore.open(options.output);
  const p = await loadModelOrAdapter(options.model);
  const tokenizer = p.tokenizer;
  if (!tokenizer) throw new DpoError(`${p.dir}: no tokenizer.json; dpo label needs the model's tokenizer`);
  const { prompts, skipped } = await loadPrompts(options.prompts, tokenizer, { onBadRow: options.onBadRow });
  if (prompts.length === 0) throw new DpoError(`${options.prompts}: no prompts to label`);
  const sampling = resolveSampling({
    maxNewTokens: options.maxNewTokens,
    doSample: true,
    temperature: options.temperature,
    topK: options.topK,
    topP: options.topP,
    generationConfig: p.generationConfig,
  });
  const generator = await Generator.create(p.model, { runtime: { threads: options.threads } });
  const session = new LabelSession({
    prompts,
    numCompletions,
    store,
    tokenizer,
    seed: options.seed,
    sample: async (text, k, seed) => {
      const r = await generator.generateText(p.weights, tokenizer, [text], {
        ...sampling,
        numSamples: k,
        seed,
        maxPromptTokens: options.maxPromptTokens,
        generationConfig: p.generationConfig,
      });
      return r.completions[0];
    },
  });
  let server;
  try {
    server = await startLabelServer(session, { port: options.port ?? DEFAULT_LABEL_PORT, title: `dpo label: ${options.output}` });
  } catch (e) {
    await generator.release();
    throw e;
  }
  return {
    url: server.url,
    session,
    skippedRows: skipped,
    close: async () => {
      await server.close();
      await generator.release();
    },
  };
}
