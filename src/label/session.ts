/**
 * A labelling session: the prompts in file order, K completions for each — sampled when first
 * shown (the next prompt's prepared meanwhile), or given (`dpo label --completions`) — and the
 * decisions written to a {@link LabelStore}. Completions of prompt i come from a seed derived from
 * (seed, i), so a resumed session shows the same completions as the first.
 *
 * Decisions and undos run one at a time in arrival order, so simultaneous requests on one prompt
 * append one row, and an undo waits for the decision it undoes. Each decision has a request id:
 * the same id again (a retried request) answers the current state without writing twice, and an
 * undo names the id of the decision it takes back.
 */
import { randomUUID } from 'node:crypto';
import { deriveSeed } from '../data/rng.js';
import { detectPreferenceFormat, toPreferenceExample } from '../data/preference-format.js';
import { RowProblem } from '../data/row-problem.js';
import type { ChatMessage, PreferenceFormat } from '../data/types.js';
import { DpoError } from '../errors.js';
import type { FinishReason } from '../generate/generator.js';
import type { PromptRow } from '../generate/prompts.js';
import type { TextTokenizer } from '../io/tokenizer-types.js';
import { LabelError } from './errors.js';
import { LabelStore, promptKey } from './store.js';

/** K completions of one prompt and, when known, why each ended. */
export interface LabelCompletions {
  texts: string[];
  /** Per completion: 'eos' (the model ended it), 'stop' (a stop string), 'length' (cut at the token limit), null: not known. */
  finishReasons?: (FinishReason | null)[];
}

/** Samples `k` completions of one prompt text with a given seed. */
export type SampleCompletions = (text: string, k: number, seed: number) => Promise<string[] | LabelCompletions>;

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
  /** Per completion, why it ended (null: not known). */
  finishReasons: (FinishReason | null)[];
}

export interface LabelState {
  /** The prompt to label now, or null when every prompt is decided or skipped. */
  item: LabelItem | null;
  total: number;
  /** Prompts decided, in this session and before it (resume), and prompts skipped in this session. */
  done: number;
  /** Rows in the output file (pairs or rankings) and ties, all sessions; prompts skipped and not decided since. */
  counts: { preferences: number; ties: number; skips: number };
  canUndo: boolean;
  /** Request id of the decision an undo would take back (null: nothing to undo). */
  lastDecision: string | null;
  numCompletions: number;
  output: string;
}

export interface LabelSessionOptions {
  prompts: readonly PromptRow[];
  /** Completions per prompt (>= 2). */
  numCompletions: number;
  /** Samples the completions of a prompt; or give them all in `completions`. */
  sample?: SampleCompletions;
  /** The completions of each prompt (parallel to `prompts`), for labelling existing completions. */
  completions?: readonly LabelCompletions[];
  store: LabelStore;
  seed?: number;
  /** Renders conversational rows when checking them as `dpo train` will. */
  tokenizer?: TextTokenizer;
}

interface Decided {
  id: string;
  index: number;
  kind: Decision['kind'];
  /** Whether the prompt was waiting as skipped before this decision. */
  wasSkipped: boolean;
}

function asCompletion(prompt: string | ChatMessage[], text: string): string | ChatMessage[] {
  return typeof prompt === 'string' ? text : [{ role: 'assistant', content: text }];
}

function normalise(sampled: string[] | LabelCompletions): Required<LabelCompletions> {
  const texts = Array.isArray(sampled) ? sampled : sampled.texts;
  const reasons = Array.isArray(sampled) ? undefined : sampled.finishReasons;
  return { texts, finishReasons: texts.map((_, i) => reasons?.[i] ?? null) };
}

export class LabelSession {
  private readonly done = new Set<number>();
  /** Prompts skipped (in this session or an earlier one) and not decided since. */
  private readonly skipped = new Set<number>();
  private readonly sampled = new Map<number, Promise<Required<LabelCompletions>>>();
  private readonly counts = { preferences: 0, ties: 0 };
  /** Sampling runs one at a time (one compiled model); this is the tail of the queue. */
  private queue: Promise<unknown> = Promise.resolve();
  /** Decisions and undos run one at a time, in arrival order; this is the tail of their queue. */
  private writes: Promise<unknown> = Promise.resolve();
  private readonly decided: Decided[] = [];
  /** Ids of decisions applied in this session (a retried request is not applied twice). */
  private readonly applied = new Set<string>();
  private readonly undone = new Set<string>();

  constructor(private readonly o: LabelSessionOptions) {
    if (!Number.isInteger(o.numCompletions) || o.numCompletions < 2) throw new DpoError(`number of completions must be an integer >= 2, got ${o.numCompletions}`);
    if (!o.sample && !o.completions) throw new DpoError('a labelling session needs a sampler or the completions');
    if (o.completions && o.completions.length !== o.prompts.length) throw new DpoError(`${o.completions.length} completion sets for ${o.prompts.length} prompts`);
    o.prompts.forEach((p, i) => {
      const key = promptKey(p.prompt);
      if (o.store.resumed.has(key)) this.done.add(i);
      else if (o.store.skippedBefore.has(key)) this.skipped.add(i);
    });
    this.counts.preferences = o.store.resumedCounts.preferences;
    this.counts.ties = o.store.resumedCounts.ties;
  }

  private completionsOf(index: number): Promise<Required<LabelCompletions>> {
    const given = this.o.completions?.[index];
    if (given) return Promise.resolve(normalise(given));
    const sample = this.o.sample as SampleCompletions;
    let p = this.sampled.get(index);
    if (!p) {
      const text = this.o.prompts[index].text;
      const seed = deriveSeed(this.o.seed ?? 0, index);
      p = this.queue.then(async () => normalise(await sample(text, this.o.numCompletions, seed)));
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

  /** Runs `fn` after every decision and undo that arrived before it. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.writes.then(fn);
    this.writes = run.catch(() => undefined);
    return run;
  }

  /** Resolves when every decision and undo that arrived so far is written (or failed). */
  async settled(): Promise<void> {
    await this.writes;
  }

  /** Progress and counts, without sampling anything. */
  snapshot(): Omit<LabelState, 'item'> {
    return {
      total: this.o.prompts.length,
      done: this.done.size,
      counts: { ...this.counts, skips: this.skipped.size },
      canUndo: this.o.store.canUndo,
      lastDecision: this.o.store.canUndo ? (this.decided[this.decided.length - 1]?.id ?? null) : null,
      numCompletions: this.o.numCompletions,
      output: this.o.store.paths.output,
    };
  }

  async state(): Promise<LabelState> {
    const index = this.next();
    let item: LabelItem | null = null;
    if (index !== undefined) {
      const row = this.o.prompts[index];
      const c = await this.completionsOf(index);
      item = { index, prompt: row.prompt, text: row.text, completions: c.texts, finishReasons: c.finishReasons };
      const following = this.next(index);
      if (following !== undefined) void this.completionsOf(following).catch(() => undefined);
    }
    return { item, ...this.snapshot() };
  }

  /**
   * Records a decision on prompt `index` (which must be the current one). `id` identifies the
   * request: a decision whose id was applied already answers the state without writing again.
   */
  decide(index: number, decision: Decision, id: string = randomUUID()): Promise<LabelState> {
    return this.serial(async () => {
      if (this.applied.has(id)) return this.state();
      if (index !== this.next()) {
        const why = this.done.has(index) ? 'is decided already' : 'is not the one being labelled';
        throw new LabelError(`prompt ${index + 1} ${why} (another tab or a repeated request?): reload the page`, 409);
      }
      await this.write(index, decision);
      this.applied.add(id);
      this.decided.push({ id, index, kind: decision.kind, wasSkipped: this.skipped.has(index) });
      this.done.add(index);
      if (decision.kind === 'skip') this.skipped.add(index);
      else this.skipped.delete(index);
      return this.state();
    });
  }

  private async write(index: number, decision: Decision): Promise<void> {
    const row = this.o.prompts[index];
    const completions = (await this.completionsOf(index)).texts;
    if (decision.kind !== 'rank') {
      await this.o.store.append('skipped', { prompt: row.prompt, completions: completions.map((c) => asCompletion(row.prompt, c)), label: decision.kind });
      if (decision.kind === 'tie') this.counts.ties++;
      return;
    }
    const order = decision.order;
    const k = completions.length;
    if (order.length !== k || new Set(order).size !== k || order.some((i) => !Number.isInteger(i) || i < 0 || i >= k)) {
      throw new DpoError(`a ranking must order all ${k} completions once, got [${order.join(', ')}]`);
    }
    const ranked = order.map((i) => asCompletion(row.prompt, completions[i]));
    const out = k === 2 ? { prompt: row.prompt, chosen: ranked[0], rejected: ranked[1] } : { prompt: row.prompt, completions: ranked };
    // The row must be one `dpo train` accepts (no empty or identical completions). Without a
    // tokenizer a conversation cannot be rendered: its texts are checked as plain rows.
    const check = typeof row.prompt !== 'string' && !this.o.tokenizer ? (k === 2 ? { prompt: row.text, chosen: completions[order[0]], rejected: completions[order[1]] } : { prompt: row.text, completions: order.map((i) => completions[i]) }) : out;
    try {
      toPreferenceExample(check, row.origin, detectPreferenceFormat(check) as PreferenceFormat, this.o.tokenizer);
    } catch (e) {
      if (!(e instanceof RowProblem)) throw e;
      throw new DpoError(`${e.message}: press t (tie) or s (skip) instead`);
    }
    await this.o.store.append('output', out);
    this.counts.preferences++;
  }

  /**
   * Takes back the last decision of this session; that prompt is shown again. `of` names the
   * decision's request id: the undo then waits for that decision, is a no-op when it was undone
   * already, and is refused when another decision came after it.
   */
  undo(of?: string): Promise<LabelState> {
    return this.serial(async () => {
      const last = this.decided[this.decided.length - 1];
      if (of !== undefined) {
        if (this.undone.has(of)) return this.state();
        if (!this.applied.has(of)) throw new LabelError('no such decision to undo: reload the page', 409);
        if (last?.id !== of || !this.o.store.canUndo) throw new LabelError('that decision is no longer the last one (another tab?): reload the page', 409);
      }
      const key = await this.o.store.undo();
      if (key === undefined || !last) return this.state();
      this.decided.pop();
      this.undone.add(last.id);
      this.done.delete(last.index);
      if (last.kind === 'rank') this.counts.preferences--;
      if (last.kind === 'tie') this.counts.ties--;
      if (last.wasSkipped) this.skipped.add(last.index);
      else this.skipped.delete(last.index);
      return this.state();
    });
  }
}
