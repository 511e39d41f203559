/**
 * Built-in reward functions for evaluation, selectable by name (`dpo evaluate --scorer NAME`):
 * cheap stand-ins for a learned reward model, such as the paper's controlled-sentiment task,
 * where the ground-truth reward is a sentiment classifier.
 *
 * A scorer is a function (prompt, completion) => number (or a promise of one); higher is better.
 * Register more with {@link registerScorer}.
 */
import { createRequire } from 'node:module';
import { DpoError } from '../errors.js';

/** A reward of one completion given its prompt; higher is better. */
export type CompletionScorer = (prompt: string, completion: string) => number | Promise<number>;

export interface ScorerEntry {
  name: string;
  description: string;
  score: CompletionScorer;
}

interface VaderModule {
  SentimentIntensityAnalyzer: { polarity_scores(text: string): { neg: number; neu: number; pos: number; compound: number } };
}

let vader: VaderModule | undefined;

function loadVader(): VaderModule {
  if (!vader) {
    try {
      vader = createRequire(import.meta.url)('vader-sentiment') as VaderModule;
    } catch (e) {
      throw new DpoError(`the 'sentiment' scorer needs the vader-sentiment package (npm install vader-sentiment): ${(e as Error).message}`);
    }
  }
  return vader;
}

/**
 * VADER's compound sentiment score of `text`, in [-1, 1] (> 0.05 is conventionally positive).
 * The same value as Python's `SentimentIntensityAnalyzer().polarity_scores(text)['compound']`.
 */
export function sentimentScore(text: string): number {
  return loadVader().SentimentIntensityAnalyzer.polarity_scores(text).compound;
}

/** Number of whitespace-separated words of `text`. */
export function wordCount(text: string): number {
  const t = text.trim();
  return t.length === 0 ? 0 : t.split(/\s+/u).length;
}

const registry = new Map<string, ScorerEntry>();

/** Adds (or replaces) a named scorer. */
export function registerScorer(name: string, score: CompletionScorer, description = ''): void {
  if (!/^[A-Za-z0-9_.:-]+$/.test(name)) throw new DpoError(`scorer name '${name}' may only hold letters, digits, '_', '.', ':' and '-'`);
  registry.set(name, { name, description, score });
}

/** The scorer registered under `name`; an unknown name is a DpoError listing the known ones. */
export function getScorer(name: string): ScorerEntry {
  const entry = registry.get(name);
  if (!entry) throw new DpoError(`unknown scorer '${name}' (known: ${listScorers().map((s) => s.name).join(', ')})`);
  return entry;
}

/** Every registered scorer, in registration order. */
export function listScorers(): ScorerEntry[] {
  return [...registry.values()];
}

registerScorer('sentiment', (_prompt, completion) => sentimentScore(completion), "VADER compound sentiment of the completion, in [-1, 1] (the paper's controlled-sentiment reward, rule-based)");
registerScorer('length', (_prompt, completion) => wordCount(completion), 'number of words of the completion');
