/**
 * The token-level generation contract: options, results and statistics of {@link IdGenerator},
 * which Generator implements and the text layer (text.ts) drives.
 */
import { DpoError } from '../errors.js';
import type { CausalLM } from '../models/types.js';
import type { SamplingOptions } from './sampling.js';

export type FinishReason = 'eos' | 'stop' | 'length';

export interface GeneratedSequence {
  /** The new tokens, including the EOS token when generation ended on one. */
  tokenIds: number[];
  finishReason: FinishReason;
  /** With stop strings: the decoded completion before the first stop string. */
  stopText?: string;
}

export interface StopStrings {
  strings: readonly string[];
  /** Text of generated ids (the completion so far), where the stop strings are looked for. */
  decode(ids: readonly number[]): string;
}

export interface GenerateIdsOptions extends Partial<SamplingOptions> {
  /** New tokens per sequence at most (>= 1). */
  maxNewTokens: number;
  /** Samples per prompt (default 1). */
  numSamples?: number;
  /** Seed of the per-sequence random streams (default 0). */
  seed?: number;
  /** Generation of a row ends after it emits one of these (default: none). */
  eosTokenIds?: readonly number[];
  /** Id placed at padded prompt slots and fed for finished rows (never attended to). Default 0. */
  padTokenId?: number;
  /** Sequences decoded together (default 8). */
  batchSize?: number;
  stop?: StopStrings;
  /** Called after each batch with sequences done so far. */
  onProgress?: (done: number, total: number, stats: GenerationStats) => void;
  /**
   * Asked before every batch and after every decoding step: true stops generation within a step,
   * throwing {@link GenerationStopped} with the prompts whose every sample was finished.
   */
  stopRequested?: () => boolean;
}

export interface GenerationStats {
  /** New tokens generated (EOS included, padding of finished rows not). */
  tokens: number;
  seconds: number;
  tokensPerSecond: number;
  /** Time in prefill runs, in step runs, and on the host (sampling, stop checks, cache moves). */
  prefillSeconds: number;
  stepSeconds: number;
  hostSeconds: number;
  /** Step-graph runs. */
  steps: number;
}

/** What text-level generation needs of a compiled generator (Generator is the implementation). */
export interface IdGenerator {
  readonly model: CausalLM;
  generateIds(
    weights: ReadonlyMap<string, Float32Array>,
    prompts: readonly (readonly number[])[],
    options: GenerateIdsOptions,
  ): Promise<{ sequences: GeneratedSequence[][]; stats: GenerationStats }>;
}

/**
 * Thrown when `stopRequested` stopped a generation: `done[i]` says whether prompt i has all its
 * samples, and `partial` is the result with only those prompts filled (the others' entries are
 * empty). The batch being decoded when the stop came is dropped.
 */
export class GenerationStopped<T = { sequences: GeneratedSequence[][]; stats: GenerationStats }> extends DpoError {
  constructor(
    readonly done: readonly boolean[],
    readonly partial: T,
  ) {
    super(`generation stopped after ${done.filter(Boolean).length} of ${done.length} prompts`);
    this.name = 'GenerationStopped';
  }

  /** How many prompts are complete. */
  get completed(): number {
    return this.done.filter(Boolean).length;
  }
}
