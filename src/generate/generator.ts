/**
 * Token-level generation with a KV cache: compile the prefill and step graphs once, then decode
 * any number of prompt batches with any weights of the same shapes.
 *
 * Per batch: the distinct prompts of the batch are left-padded and prefilled once (position ids
 * cumsum(mask) - 1, clamped at 0, as transformers' generate), their caches are copied to every
 * sample of the prompt, then each step feeds one token per row and the cache of the previous
 * step. A step costs the layers on one position plus attention over the cache: the prefix is
 * never recomputed. ONNX Runtime's Node binding cannot keep outputs on the device, so the cache
 * lives on the host: one preallocated position-major buffer per layer and key/value, fed to
 * each step as a view of its first P positions (no copy) and appended to with the step's one
 * new position (see graphs.ts).
 *
 * Every sequence draws from its own Rng, seeded from (seed, prompt index, sample index): the
 * samples do not depend on batch size, batch order or which other prompts share the batch.
 */
import { deriveSeed, Rng } from '../data/rng.js';
import { DpoError } from '../errors.js';
import type { HostTensor, RuntimeOptions } from '../engine/runtime.js';
import type { CausalLM } from '../models/types.js';
import { DecodeGraphs, keyName, type ParamTransform, type WeightInput } from './graphs.js';
import { Sampler, type SamplingOptions } from './sampling.js';
import { generateText, type TextGenerationOptions, type TextGenerationResult } from './text.js';
import type { TextTokenizer } from '../io/tokenizer-types.js';
import { GenerationStopped, type GeneratedSequence, type GenerateIdsOptions, type GenerationStats, type IdGenerator, type StopStrings } from './types.js';

export type { FinishReason, GeneratedSequence, GenerateIdsOptions, GenerationStats, StopStrings } from './types.js';
export { GenerationStopped } from './types.js';

export interface GeneratorOptions {
  /** Weight inputs; default the model's parameters (add LoRA adapters here with a transform). */
  inputs?: readonly WeightInput[];
  transform?: ParamTransform;
  runtime?: RuntimeOptions;
}

interface Sequence {
  index: number;
  prompt: number;
  sample: number;
}

const now = (): number => performance.now() / 1000;

export class Generator implements IdGenerator {
  private constructor(
    readonly model: CausalLM,
    readonly graphs: DecodeGraphs,
  ) {}

  static async create(model: CausalLM, options: GeneratorOptions = {}): Promise<Generator> {
    const graphs = await DecodeGraphs.compile(model, { inputs: options.inputs, transform: options.transform, runtime: options.runtime });
    return new Generator(model, graphs);
  }

  async release(): Promise<void> {
    await this.graphs.release();
  }

  /** Completions for text prompts (see {@link TextGenerationOptions} for the defaults). */
  generateText(
    weights: ReadonlyMap<string, Float32Array>,
    tokenizer: TextTokenizer,
    prompts: readonly string[],
    options: TextGenerationOptions = {},
  ): Promise<TextGenerationResult> {
    return generateText(this, weights, tokenizer, prompts, options);
  }

  /**
   * Generates `numSamples` sequences for every prompt (token ids). Returns them per prompt, in
   * prompt order.
   */
  async generateIds(
    weights: ReadonlyMap<string, Float32Array>,
    prompts: readonly (readonly number[])[],
    options: GenerateIdsOptions,
  ): Promise<{ sequences: GeneratedSequence[][]; stats: GenerationStats }> {
    const started = now();
    const numSamples = options.numSamples ?? 1;
    const batchSize = options.batchSize ?? 8;
    const maxNew = options.maxNewTokens;
    if (!Number.isInteger(maxNew) || maxNew < 1) throw new DpoError(`max new tokens must be a positive integer, got ${maxNew}`);
    if (!Number.isInteger(numSamples) || numSamples < 1) throw new DpoError(`number of samples must be a positive integer, got ${numSamples}`);
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new DpoError(`batch size must be a positive integer, got ${batchSize}`);
    const sampling: SamplingOptions = {
      doSample: options.doSample ?? false,
      temperature: options.temperature ?? 1,
      topK: options.topK ?? 0,
      topP: options.topP ?? 1,
    };
    const vocab = this.model.config.vocabSize;
    const sampler = new Sampler(vocab, sampling);
    const pad = options.padTokenId ?? 0;
    const eos = new Set(options.eosTokenIds ?? []);
    for (const id of [pad, ...eos]) {
      if (!Number.isInteger(id) || id < 0 || id >= vocab) throw new DpoError(`token id ${id} (pad/EOS) is outside the vocabulary of ${vocab}`);
    }
    prompts.forEach((p, i) => {
      if (p.length === 0) throw new DpoError(`prompt ${i} has no tokens (give it at least a BOS token)`);
      for (const id of p) {
        if (!Number.isInteger(id) || id < 0 || id >= vocab) throw new DpoError(`prompt ${i}: token id ${id} is outside the vocabulary of ${vocab}`);
      }
    });
    const longest = prompts.reduce((m, p) => Math.max(m, p.length), 0);
    if (this.model.checkSequenceLength) {
      try {
        this.model.checkSequenceLength(longest + maxNew - 1);
      } catch (e) {
        throw new DpoError(`the longest prompt (${longest} tokens) plus ${maxNew} new tokens does not fit: ${(e as Error).message}`);
      }
    }

    // Every (prompt, sample), longest prompts first so that batches pad little.
    const seqs: Sequence[] = [];
    prompts.forEach((_, p) => {
      for (let s = 0; s < numSamples; s++) seqs.push({ index: seqs.length, prompt: p, sample: s });
    });
    const order = [...seqs].sort((a, b) => prompts[b.prompt].length - prompts[a.prompt].length || a.index - b.index);
    const results: GeneratedSequence[][] = prompts.map(() => new Array<GeneratedSequence>(numSamples));
    const stats: GenerationStats = { tokens: 0, seconds: 0, tokensPerSecond: 0, prefillSeconds: 0, stepSeconds: 0, hostSeconds: 0, steps: 0 };
    const weightFeeds = this.graphs.weightFeeds(weights);
    const seed = options.seed ?? 0;
    const stopRequested = options.stopRequested ?? (() => false);
    const stopped = (): GenerationStopped => {
      stats.seconds = now() - started;
      stats.tokensPerSecond = stats.seconds > 0 ? stats.tokens / stats.seconds : 0;
      // (The arrays have holes, which every() would skip.)
      const done = results.map((samples) => Array.from({ length: numSamples }, (_, k) => samples[k]).every((s) => s !== undefined));
      return new GenerationStopped(done, { sequences: results.map((samples, i) => (done[i] ? samples : [])), stats });
    };
    for (let start = 0; start < order.length; start += batchSize) {
      if (stopRequested()) throw stopped();
      const batch = order.slice(start, start + batchSize);
      const rngs = batch.map((q) => new Rng(deriveSeed(seed, q.prompt, q.sample)));
      const out = await this.decodeBatch(weightFeeds, batch.map((q) => prompts[q.prompt]), rngs, sampler, { maxNew, eos, pad, stop: options.stop, stopRequested }, stats);
      if (!out) throw stopped();
      batch.forEach((q, i) => {
        results[q.prompt][q.sample] = out[i];
      });
      stats.seconds = now() - started;
      stats.tokensPerSecond = stats.seconds > 0 ? stats.tokens / stats.seconds : 0;
      options.onProgress?.(Math.min(start + batchSize, order.length), order.length, { ...stats });
    }
    stats.seconds = now() - started;
    stats.tokensPerSecond = stats.seconds > 0 ? stats.tokens / stats.seconds : 0;
    stats.hostSeconds = Math.max(0, stats.seconds - stats.prefillSeconds - stats.stepSeconds);
    return { sequences: results, stats };
  }

  /** Decodes one batch of rows (row prompts may repeat: each distinct prompt is prefilled once). */
  private async decodeBatch(
    weightFeeds: Record<string, HostTensor>,
    rowPrompts: readonly (readonly number[])[],
    rngs: Rng[],
    sampler: Sampler,
    o: { maxNew: number; eos: ReadonlySet<number>; pad: number; stop?: StopStrings; stopRequested: () => boolean },
    stats: GenerationStats,
  ): Promise<GeneratedSequence[] | undefined> {
    const { numLayers, numKeyValueHeads: kvh, headDim, vocabSize: vocab } = this.model.config;
    const b = rowPrompts.length;
    // Distinct prompts (rows of the same prompt are adjacent after sorting, but do not rely on it).
    const unique: (readonly number[])[] = [];
    const uniqueOf = new Map<readonly number[], number>();
    const rowSource = rowPrompts.map((p) => {
      let u = uniqueOf.get(p);
      if (u === undefined) {
        u = unique.length;
        unique.push(p);
        uniqueOf.set(p, u);
      }
      return u;
    });
    const u = unique.length;
    const t = unique.reduce((m, p) => Math.max(m, p.length), 0);

    // Prefill, left-padded.
    const ids = new BigInt64Array(u * t).fill(BigInt(o.pad));
    const mask = new Float32Array(u * t);
    const pos = new BigInt64Array(u * t);
    unique.forEach((p, r) => {
      const offset = t - p.length;
      for (let j = 0; j < p.length; j++) {
        ids[r * t + offset + j] = BigInt(p[j]);
        mask[r * t + offset + j] = 1;
        pos[r * t + offset + j] = BigInt(j);
      }
    });
    let clock = now();
    const pre = await this.graphs.prefill.run({
      ...weightFeeds,
      input_ids: { data: ids, dims: [u, t] },
      attention_mask: { data: mask, dims: [u, t] },
      position_ids: { data: pos, dims: [u, t] },
    });
    stats.prefillSeconds += now() - clock;

    // The cache: one position-major buffer [capacity, b, kvh, headDim] per layer and key/value,
    // filled with the prefill's positions (copied to every row of the same prompt) and appended
    // to after each step. A step reads the first p positions as a view.
    const rowStride = kvh * headDim; // floats per row and position
    const posStride = b * rowStride; // floats per position
    const capacity = t + o.maxNew - 1; // most positions a step reads
    const identity = u === b && rowSource.every((s, i) => s === i);
    const layers: { name: string; layer: number; which: 'key' | 'value' }[] = [];
    for (let l = 0; l < numLayers; l++) for (const which of ['key', 'value'] as const) layers.push({ name: keyName('present', l, which), layer: l, which });
    const cache = layers.map(({ name }) => {
      const src = pre[name].data as Float32Array; // [t, u, kvh, headDim]
      const dst = new Float32Array(capacity * posStride);
      if (identity) dst.set(src);
      else {
        for (let j = 0; j < t; j++) {
          rowSource.forEach((s, r) => dst.set(src.subarray((j * u + s) * rowStride, (j * u + s + 1) * rowStride), (j * b + r) * rowStride));
        }
      }
      return dst;
    });

    const logitsRows = new Float32Array(b * vocab);
    {
      const preLogits = pre.logits.data as Float32Array;
      rowSource.forEach((s, r) => logitsRows.set(preLogits.subarray(s * vocab, (s + 1) * vocab), r * vocab));
    }
    const realLen = rowPrompts.map((p) => p.length);
    const promptMask = rowSource.map((s) => mask.subarray(s * t, (s + 1) * t));
    const generated: number[][] = rowPrompts.map(() => []);
    const done: (GeneratedSequence | undefined)[] = new Array(b).fill(undefined);
    let logits: Float32Array = logitsRows;
    let remaining = b;
    const maxStop = o.stop ? Math.max(0, ...o.stop.strings.map((s) => s.length)) : 0;

    for (let step = 0; ; step++) {
      // Choose the next token of every live row.
      for (let r = 0; r < b; r++) {
        if (done[r]) continue;
        const token = sampler.next(logits, r * vocab, rngs[r]);
        const seq = generated[r];
        seq.push(token);
        stats.tokens++;
        let finished: GeneratedSequence | undefined;
        if (o.eos.has(token)) finished = { tokenIds: seq, finishReason: 'eos' };
        else if (o.stop && maxStop > 0) {
          const text = o.stop.decode(seq);
          const at = firstStop(text, o.stop.strings);
          if (at >= 0) finished = { tokenIds: seq, finishReason: 'stop', stopText: text.slice(0, at) };
        }
        if (!finished && seq.length >= o.maxNew) finished = { tokenIds: seq, finishReason: 'length' };
        if (finished) {
          done[r] = finished;
          remaining--;
        }
      }
      if (remaining === 0) break;
      // Stopped: the batch is dropped (undefined), so a stop takes effect within one step.
      if (o.stopRequested()) return undefined;

      // One step: the new tokens (pad for finished rows), the mask over past + 1, the positions.
      const p = t + step; // cached positions
      const stepIds = new BigInt64Array(b);
      const stepPos = new BigInt64Array(b);
      const stepMask = new Float32Array(b * (p + 1));
      for (let r = 0; r < b; r++) {
        const seq = generated[r];
        stepIds[r] = BigInt(done[r] ? o.pad : seq[seq.length - 1]);
        stepPos[r] = BigInt(realLen[r] + step);
        stepMask.set(promptMask[r], r * (p + 1));
        stepMask.fill(1, r * (p + 1) + t, (r + 1) * (p + 1));
      }
      const feeds: Record<string, HostTensor> = {
        ...weightFeeds,
        input_ids: { data: stepIds, dims: [b, 1] },
        position_ids: { data: stepPos, dims: [b, 1] },
        attention_mask: { data: stepMask, dims: [b, p + 1] },
      };
      layers.forEach(({ layer, which }, k) => {
        feeds[keyName('past', layer, which)] = { data: cache[k].subarray(0, p * posStride), dims: [p, b, kvh, headDim] };
      });
      clock = now();
      const out = await this.graphs.step.run(feeds);
      stats.stepSeconds += now() - clock;
      stats.steps++;
      layers.forEach(({ layer, which }, k) => cache[k].set(out[keyName('new', layer, which)].data as Float32Array, p * posStride));
      logits = out.logits.data as Float32Array;
    }
    return done as GeneratedSequence[];
  }
}

/** Index of the earliest occurrence of any stop string in `text`, or -1. */
export function firstStop(text: string, stops: readonly string[]): number {
  let best = -1;
  for (const s of stops) {
    if (s.length === 0) continue;
    const at = text.indexOf(s);
    if (at >= 0 && (best < 0 || at < best)) best = at;
  }
  return best;
}
