/**
 * `runLabel`: open (or resume) the output, then either load a model and a prompt file (the
 * completions are sampled) or read a file of existing completions, and serve the labelling page.
 * The caller stops it with `close()` (the CLI on Ctrl-C).
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
import { loadCompletions } from './completions.js';
import { startLabelServer, type LabelServer } from './server.js';
import { LabelSession, type LabelSessionOptions } from './session.js';
import { LabelStore, skippedPath } from './store.js';

export interface LabelOptions {
  /** Model folder, hub id or LoRA adapter folder that samples the completions (with `prompts`). */
  model?: string;
  /** Prompt file or folder ({"prompt": ...} or conversational rows), with `model`. */
  prompts?: string;
  /**
   * Existing completions to label instead of sampling: rows {"prompt", "completions": [...]}
   * (what `dpo generate` writes), optional "finish_reasons". Excludes `model` and `prompts`.
   */
  completions?: string;
  /** Preference JSONL to write (appended to, when it exists: resume). */
  output: string;
  /** Completions per prompt (default 2; > 2 gives rankings). With `completions`: the file's K. */
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
  /** Hears what the page cannot show: a stale lock taken over, a failed write (default: ignored). */
  log?: (message: string) => void;
}

export interface RunningLabel {
  url: string;
  session: LabelSession;
  /** Prompt rows left out (with onBadRow 'skip'). */
  skippedRows: BadRow[];
  close(): Promise<void>;
}

export const DEFAULT_LABEL_PORT = 8765;

/** Options that only sampling uses, with their flags: refused with `completions`. */
const SAMPLING_FLAGS = {
  model: '--model',
  prompts: '--prompts',
  maxNewTokens: '--max-new-tokens',
  temperature: '--temperature',
  topK: '--top-k',
  topP: '--top-p',
  maxPromptTokens: '--max-prompt-tokens',
  threads: '--threads',
} as const satisfies Partial<Record<keyof LabelOptions, string>>;

type Source = Pick<LabelSessionOptions, 'prompts' | 'sample' | 'completions' | 'tokenizer' | 'numCompletions'> & { skipped: BadRow[]; release(): Promise<void> };

async function sampledSource(options: LabelOptions, model: string, promptsPath: string, numCompletions: number): Promise<Source> {
  const p = await loadModelOrAdapter(model);
  const tokenizer = p.tokenizer;
  if (!tokenizer) throw new DpoError(`${p.dir}: no tokenizer.json; dpo label needs the model's tokenizer`);
  const { prompts, skipped } = await loadPrompts(promptsPath, tokenizer, { onBadRow: options.onBadRow });
  if (prompts.length === 0) throw new DpoError(`${promptsPath}: no prompts to label`);
  const sampling = resolveSampling({
    maxNewTokens: options.maxNewTokens,
    doSample: true,
    temperature: options.temperature,
    topK: options.topK,
    topP: options.topP,
    generationConfig: p.generationConfig,
  });
  const generator = await Generator.create(p.model, { runtime: { threads: options.threads } });
  return {
    prompts,
    skipped,
    tokenizer,
    numCompletions,
    sample: async (text, k, seed) => {
      const r = await generator.generateText(p.weights, tokenizer, [text], {
        ...sampling,
        numSamples: k,
        seed,
        maxPromptTokens: options.maxPromptTokens,
        generationConfig: p.generationConfig,
      });
      return { texts: r.completions[0], finishReasons: r.finishReasons[0] };
    },
    release: () => generator.release(),
  };
}

async function givenSource(options: LabelOptions, path: string): Promise<Source> {
  const loaded = await loadCompletions(path, { onBadRow: options.onBadRow });
  if (options.numCompletions !== undefined && options.numCompletions !== loaded.numCompletions) {
    throw new DpoError(`--num-completions ${options.numCompletions}: ${path} has ${loaded.numCompletions} completions per row`);
  }
  return { prompts: loaded.prompts, completions: loaded.completions, numCompletions: loaded.numCompletions, skipped: loaded.skipped, release: async () => undefined };
}

export async function runLabel(options: LabelOptions): Promise<RunningLabel> {
  const given = options.completions;
  if (given !== undefined) {
    const sampling = Object.entries(SAMPLING_FLAGS).find(([key]) => options[key as keyof typeof SAMPLING_FLAGS] !== undefined);
    if (sampling) throw new DpoError(`${sampling[1]}: --completions labels existing completions; sampling options do not apply`);
  } else if (options.model === undefined || options.prompts === undefined) {
    throw new DpoError("give --model and --prompts (sample the completions), or --completions FILE (label existing ones); see 'dpo label --help'");
  }
  const numCompletions = options.numCompletions ?? 2;
  if (!Number.isInteger(numCompletions) || numCompletions < 2 || numCompletions > 9) {
    throw new DpoError(`--num-completions: expected an integer from 2 to 9 (one key each), got ${numCompletions}`);
  }
  // The output is checked (and resumed) before the model is loaded: a bad file fails fast.
  const input = (given ?? options.prompts) as string;
  const inputPath = await realpath(input).catch(() => resolve(input));
  for (const written of [options.output, skippedPath(options.output)]) {
    if ((await realpath(written).catch(() => resolve(written))) === inputPath) {
      throw new DpoError(`--output: ${written} is the ${given !== undefined ? 'completions' : 'prompts'} file; choose another output file`);
    }
  }
  await mkdir(dirname(options.output), { recursive: true });
  const store = await LabelStore.open(options.output, { onStaleLock: options.log });
  let source: Source | undefined;
  let server: LabelServer;
  let session: LabelSession;
  try {
    source = given !== undefined ? await givenSource(options, given) : await sampledSource(options, options.model as string, options.prompts as string, numCompletions);
    session = new LabelSession({ ...source, store, seed: options.seed });
    server = await startLabelServer(session, {
      port: options.port ?? DEFAULT_LABEL_PORT,
      title: `dpo label: ${options.output}`,
      onError: (e) => options.log?.(`dpo label: ${e.message}`),
    });
  } catch (e) {
    await source?.release();
    await store.close();
    throw e;
  }
  const release = source.release;
  return {
    url: server.url,
    session,
    skippedRows: source.skipped,
    close: async () => {
      await server.close();
      await session.settled();
      await release();
      await store.close();
    },
  };
}
