import { deriveSeed, Rng } from './rng.js';

/** How an epoch's rows are ordered and cut into batches. */
export interface OrderOptions {
  batchSize: number;
  /** Shuffle every epoch (default true). */
  shuffle?: boolean;
  /** Seed of the shuffles; each epoch's order depends only on (seed, epoch). Default 0. */
  seed?: number;
  /**
   * Put rows of similar length together (less padding), as Hugging Face's LengthGroupedSampler:
   * take the epoch's order, cut it into mega-batches of `megaBatchMultiplier · batchSize` rows, sort
   * each by length (longest first), cut into batches, then shuffle the batch order; the batch holding
   * the longest row goes first so running out of memory shows on the first step.
   */
  groupByLength?: boolean;
  /** Mega-batch size in batches for groupByLength (default 50, as HF). */
  megaBatchMultiplier?: number;
  /** Drop the last, smaller batch of each epoch (default false). */
  dropLast?: boolean;
}

/**
 * The batches (lists of row indices) of one epoch. A pure function of its arguments, so any epoch
 * can be recomputed on resume. `lengths[i]` is row i's longest sequence length (for groupByLength).
 */
export function epochBatches(lengths: readonly number[], epoch: number, options: OrderOptions): number[][] {
  const { batchSize, shuffle = true, seed = 0, groupByLength = false, megaBatchMultiplier = 50, dropLast = false } = options;
  const rng = new Rng(deriveSeed(seed, epoch));
  const order = lengths.map((_, i) => i);
  if (shuffle) rng.shuffle(order);
  if (!groupByLength) return dropPartial(chunk(order, batchSize), batchSize, dropLast);

  const mega = batchSize * megaBatchMultiplier;
  // Stable sort (ties keep the shuffled order), longest first.
  const sorted = chunk(order, mega).map((m) => m.sort((a, b) => lengths[b] - lengths[a]));
  const batches = dropPartial(
    sorted.flatMap((m) => chunk(m, batchSize)),
    batchSize,
    dropLast,
  );
  if (shuffle) {
    rng.shuffle(batches);
    let longest = 0;
    batches.forEach((b, j) => {
      if (lengths[b[0]] > lengths[batches[longest][0]]) longest = j;
    });
    [batches[0], batches[longest]] = [batches[longest], batches[0]];
  }
  return batches;
}

function chunk<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

function dropPartial(batches: number[][], batchSize: number, dropLast: boolean): number[][] {
  if (dropLast && batches.length > 0 && batches[batches.length - 1].length < batchSize) batches.pop();
  return batches;
}
