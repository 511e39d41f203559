/**
 * TRL's DPO metrics from per-sequence quantities, computed in float64 in JavaScript (they are
 * reporting, not training: keeping them out of the graph keeps the step lean).
 */
import { appendFile } from 'node:fs/promises';

export interface BatchSequenceStats {
  /** Rows B and completions K; sequence n = k*B + i. */
  rows: number;
  completions: number;
  policyLogps: ArrayLike<number>;
  /** Undefined for reference-free training. */
  referenceLogps?: ArrayLike<number>;
  logitSums: ArrayLike<number>;
  lengths: ArrayLike<number>;
  /** Per-sequence rewards before beta, when not the log-ratio policy - reference (CPO's AlphaPO shape). */
  rewards?: ArrayLike<number>;
}

/** Sums that average into TRL's metrics over any number of batches. */
export class MetricsAccumulator {
  private sums = new Map<string, number>();
  private counts = new Map<string, number>();

  add(name: string, value: number, count = 1): void {
    this.sums.set(name, (this.sums.get(name) ?? 0) + value * count);
    this.counts.set(name, (this.counts.get(name) ?? 0) + count);
  }

  /** rewards/*, logps/*, logits/* of one batch (chosen = best completion; rejected = the others). */
  addBatch(s: BatchSequenceStats, beta: number): void {
    const { rows: B, completions: K } = s;
    let chosenTokens = 0;
    let rejectedTokens = 0;
    let chosenLogitSum = 0;
    let rejectedLogitSum = 0;
    for (let i = 0; i < B; i++) {
      const ratio = (n: number): number => (s.rewards ? s.rewards[n] : s.policyLogps[n] - (s.referenceLogps ? s.referenceLogps[n] : 0));
      const chosenReward = beta * ratio(i);
      let rejectedReward = 0;
      let rejectedLogps = 0;
      let allBelow = true;
      for (let k = 1; k < K; k++) {
        const r = beta * ratio(k * B + i);
        rejectedReward += r / (K - 1);
        rejectedLogps += s.policyLogps[k * B + i] / (K - 1);
        if (!(chosenReward > r)) allBelow = false;
        rejectedTokens += s.lengths[k * B + i];
        rejectedLogitSum += s.logitSums[k * B + i];
      }
      chosenTokens += s.lengths[i];
      chosenLogitSum += s.logitSums[i];
      this.add('rewards/chosen', chosenReward);
      this.add('rewards/rejected', rejectedReward);
      this.add('rewards/accuracies', allBelow ? 1 : 0);
      this.add('rewards/margins', chosenReward - rejectedReward);
      this.add('logps/chosen', s.policyLogps[i]);
      this.add('logps/rejected', rejectedLogps);
    }
    if (chosenTokens) this.add('logits/chosen', chosenLogitSum / chosenTokens, chosenTokens);
    if (rejectedTokens) this.add('logits/rejected', rejectedLogitSum / rejectedTokens, rejectedTokens);
  }

  /** Means of everything added, then cleared. */
  flush(prefix = ''): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [k, v] of this.sums) out[`${prefix}${k}`] = v / (this.counts.get(k) as number);
    this.sums = new Map();
    this.counts = new Map();
    return out;
  }
}

/** Appends one JSON line to metrics.jsonl. */
export async function appendMetrics(file: string, record: Record<string, unknown>): Promise<void> {
  await appendFile(file, `${JSON.stringify(record)}\n`);
}
