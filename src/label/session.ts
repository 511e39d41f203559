/**
 * A labelling session: the prompts in file order, K sampled completions for each (sampled when
 * first shown, the next prompt's prepared meanwhile), and the decisions written to a
 * {@link LabelStore}. Completions of prompt i come from a seed derived from (seed, i), so a
 * resumed session shows the same completions as the first.
 */
import { deriveSeed } from '../data/rng.js';
import { detectPreferenceFormat, toPreferenceExample } from '../data/preference-format.js';
import { RowProblem } from '../data/row-problem.js';
import type { ChatMessage, PreferenceFormat } from '../data/types.js';
import { DpoError } from '../errors.js';
import type { PromptRow } from '../generate/prompts.js';
import type { TextTokenizer } from '../io/tokenizer-types.js';
import { LabelStore, promptKey } from './store.js';

/** Samples `k` completions of one prompt text with a given seed. */
export type SampleCompletions = (text: string, k: number, seed: number) => Promise<string[]>;

/** A decision on one prompt: a full ranking of its completions (indices, best first), a tie, or a skip. */
export type Decision = { kind: 'rank'; order: number[] } | { kind: 'tie' } | { kind: 'skip' };

export interface LabelItem {
  /** Index of the prompt in the prompt file (0-based). */
  index: number;
  /** The prompt as the file gives it (a string or a message list). */
  prompt: string | ChatMessage[];
  /** The text the model continued (conversations rendered with the chat template). */
  text: string;
  completions: string[];
}

export interface LabelState {
  /** The prompt to label now, or null when every prompt is decided. */
  item: LabelItem | null;
  total: number;
  /** Prompts decided, in this session and before it (resume). */
  done: number;
  /** Rows in the output file (pairs or rankings), ties and skips in the sidecar, all sessions. */
  counts: { preferences: number; ties: number; skips: number };
  canUndo: boolean;
  numCompletions: number;
  output: string;
}

export interface LabelSessionOptions {
  prompts: readonly PromptRow[];
  /** Completions per prompt (>= 2). */
  numCompletions: number;
  sample: SampleCompletions;
  store: LabelStore;
  seed?: number;
  /** Renders conversational rows when checking them as `dpo train` will. */
  tokenizer?: TextTokenizer;
}

function asCompletion(prompt: string | ChatMessage[], text: string): string | ChatMessage[] {
  return typeof prompt === 'string' ? text : [{ role: 'assistant', content: text }];
}

export class LabelSession {
  private readonly done = new Set<number>();
  private readonly sampled = new Map<number, Promise<string[]>>();
  private readonly counts = { preferences: 0, ties: 0, skips: 0 };
  /** Sampling runs one at a time (one compiled model); this is the tail of the queue. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly o: LabelSessionOptions) {
    if (!Number.isInteger(o.numCompletions) || o.numCompletions < 2) throw new DpoError(`number of completions must be an integer >= 2, got ${o.numCompletions}`);
    o.prompts.forEach((p, i) => {
      if (o.store.resumed.has(promptKey(p.prompt))) this.done.add(i);
    });
    Object.assign(this.counts, o.store.resumedCounts);
  }

  private completionsOf(index: number): Promise<string[]> {
    let p = this.sampled.get(index);
    if (!p) {
      const text = this.o.prompts[index].text;
      const seed = deriveSeed(this.o.seed ?? 0, index);
      p = this.queue.then(() => this.o.sample(text, this.o.numCompletions, seed));
      this.queue = p.catch(() => undefined);
      this.sampled.set(index, p);
      // A failed sample is retried the next time it is asked for.
      p.catch(() => this.sampled.delete(index));
    }
    return p;
  }

  private next(after = -1): number | undefined {
    for (let i = after + 1; i < this.o.prompts.length; i++) if (!this.done.has(i)) return i;
    return undefined;
  }

  /** Progress and counts, without sampling anything. */
  snapshot(): Omit<LabelState, 'item'> {
    return {
      total: this.o.prompts.length,
      done: this.done.size,
      counts: { ...this.counts },
      canUndo: this.o.store.canUndo,
      numCompletions: this.o.numCompletions,
      output: this.o.store.paths.output,
    };
  }

  async state(): Promise<LabelState> {
    const index = this.next();
    let item: LabelItem | null = null;
    if (index !== undefined) {
      const row = this.o.prompts[index];
      item = { index, prompt: row.prompt, text: row.text, completions: await this.completionsOf(index) };
      const following = this.next(index);
      if (following !== undefined) void this.completionsOf(following).catch(() => undefined);
    }
    return { item, ...this.snapshot() };
  }

  /** Records a decision on prompt `index` (which must be the current one). */
  async decide(index: number, decision: Decision): Promise<LabelState> {
    if (index !== this.next()) throw new DpoError(`prompt ${index} is not the one being labelled (reload the page)`);
    const row = this.o.prompts[index];
    const completions = await this.completionsOf(index);
    if (decision.kind === 'rank') {
      const order = decision.order;
      const k = completions.length;
      if (order.length !== k || new Set(order).size !== k || order.some((i) => !Number.isInteger(i) || i < 0 || i >= k)) {
        throw new DpoError(`a ranking must order all ${k} completions once, got [${order.join(', ')}]`);
      }
      const ranked = order.map((i) => asCompletion(row.prompt, completions[i]));
      const out = k === 2 ? { prompt: row.prompt, chosen: ranked[0], rejected: ranked[1] } : { prompt: row.prompt, completions: ranked };
      // The row must be one `dpo train` accepts (no empty or identical completions).
      try {
        toPreferenceExample(out, row.origin, detectPreferenceFormat(out) as PreferenceFormat, this.o.tokenizer);
      } catch (e) {
        if (!(e instanceof RowProblem)) throw e;
        throw new DpoError(`${e.message}: press t (tie) or s (skip) instead`);
      }
      await this.o.store.append('output', out);
      this.counts.preferences++;
    } else {
      await this.o.store.append('skipped', { prompt: row.prompt, completions: completions.map((c) => asCompletion(row.prompt, c)), label: decision.kind });
      this.counts[decision.kind === 'tie' ? 'ties' : 'skips']++;
    }
    this.done.add(index);
    this.lastDecided.push({ index, kind: decision.kind });
    return this.state();
  }

  private readonly lastDecided: { index: number; kind: Decision['kind'] }[] = [];

  /** Takes back the last decision of this session; that prompt is shown again. */
  async undo(): Promise<LabelState> {
    const key = await this.o.store.undo();
    const last = this.lastDecided.pop();
    if (key !== undefined && last) {
      this.done.delete(last.index);
      if (last.kind === 'rank') this.counts.preferences--;
      else this.counts[last.kind === 'tie' ? 'ties' : 'skips']--;
    }
    return this.state();
  }
}
