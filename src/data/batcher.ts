import { DpoError } from '../errors.js';
import { collatePreferences, type PreferenceBatch } from './collate.js';
import { epochBatches, type OrderOptions } from './order.js';
import type { TokenizedPreference } from './tokenize.js';

/** Options of {@link PreferenceBatcher}. */
export interface BatcherOptions extends OrderOptions {
  padTokenId: number;
  padToMultipleOf?: number;
}

/**
 * Where a batcher is in the data: the next batch is batch `index` of epoch `epoch` (both 0-based).
 * Plain JSON, saved in checkpoints; restoring it replays exactly the same following batches.
 */
export interface BatcherState {
  epoch: number;
  index: number;
}

/**
 * Serves {@link PreferenceBatch}es of tokenized rows, epoch after epoch, forever. Works for SFT
 * rows too (K = 1). The order of epoch e depends only on (seed, e, the rows' lengths), so
 * `state()` / `restore()` are just a position and resuming needs no saved permutation.
 */
export class PreferenceBatcher {
  /** Batches in one epoch (after dropLast). */
  readonly batchesPerEpoch: number;
  private readonly lengths: number[];
  private position: BatcherState = { epoch: 0, index: 0 };
  private cached: { epoch: number; batches: number[][] } | undefined;

  constructor(
    private readonly rows: readonly TokenizedPreference[],
    private readonly options: BatcherOptions,
  ) {
    const { batchSize, megaBatchMultiplier = 50 } = options;
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new DpoError(`batchSize must be a positive integer, got ${batchSize}`);
    if (!Number.isInteger(megaBatchMultiplier) || megaBatchMultiplier < 1) {
      throw new DpoError(`megaBatchMultiplier must be a positive integer, got ${megaBatchMultiplier}`);
    }
    if (rows.length === 0) throw new DpoError('no data rows to batch');
    const K = rows[0].completionIds.length;
    const odd = rows.find((r) => r.completionIds.length !== K);
    if (odd) {
      throw new DpoError(
        `${odd.origin.file}:${odd.origin.line}: has ${odd.completionIds.length} completions but earlier rows have ${K}; all rows must have the same number`,
      );
    }
    this.lengths = rows.map((r) => r.promptIds.length + Math.max(...r.completionIds.map((c) => c.length)));
    this.batchesPerEpoch = options.dropLast ? Math.floor(rows.length / batchSize) : Math.ceil(rows.length / batchSize);
    if (this.batchesPerEpoch === 0) {
      throw new DpoError(`${rows.length} rows make no full batch of ${batchSize} with dropLast`);
    }
  }

  /** Row indices of every batch of `epoch`, in order. */
  batchIndices(epoch: number): number[][] {
    if (this.cached?.epoch !== epoch) this.cached = { epoch, batches: epochBatches(this.lengths, epoch, this.options) };
    return this.cached.batches;
  }

  /** The next batch; moves to the next epoch after the last batch of one. */
  next(): PreferenceBatch {
    const { epoch, index } = this.position;
    const indices = this.batchIndices(epoch)[index];
    this.position = index + 1 < this.batchesPerEpoch ? { epoch, index: index + 1 } : { epoch: epoch + 1, index: 0 };
    const batch = collatePreferences(
      indices.map((i) => this.rows[i]),
      { padTokenId: this.options.padTokenId, padToMultipleOf: this.options.padToMultipleOf },
    );
    return { ...batch, rowIndices: indices };
  }

  /** The position of the next batch. */
  state(): BatcherState {
    return { ...this.position };
  }

  /** Continues from a position saved by {@link state} (same rows and options). */
  restore(state: BatcherState): void {
    const { epoch, index } = state;
    if (!Number.isInteger(epoch) || epoch < 0 || !Number.isInteger(index) || index < 0 || index >= this.batchesPerEpoch) {
      throw new DpoError(`cannot resume data at epoch ${epoch}, batch ${index}: an epoch has ${this.batchesPerEpoch} batches`);
    }
    this.position = { epoch, index };
  }
}
