/**
 * A small compiled graph: per-row losses [B] from per-sequence log-probs, with the same loss
 * combination as training (see preferenceLossPerRow). Serves evaluation during training and
 * `dpo eval` / evaluatePreferences.
 */
import { Graph } from '../../engine/graph.js';
import { CompiledGraph, type HostTensor } from '../../engine/runtime.js';
import { preferenceLossPerRow, type CombinedLossOptions } from './losses.js';

/** What the row-loss graph takes besides log-probs: LD-DPO's plain sums, WPO's row weights. */
export interface RowLossInputs {
  policySums?: boolean;
  rowWeights?: boolean;
}

export interface RowLossExtras {
  /** [N] plain log-prob sums when `logps` are LD-DPO's. */
  policySums?: ArrayLike<number>;
  /** [B] WPO weights. */
  rowWeights?: ArrayLike<number>;
  /** [N] sums of log(1 - p) per sequence, read by loss type 'unlikelihood' only. */
  logUnlikelihood?: ArrayLike<number>;
}

export interface RowLossGraph {
  /**
   * `logps`, `ref` and `lengths` are per sequence, n = k*B + i (K completions of B rows); `ref`
   * is undefined for reference-free losses; `logUnlikelihood` (per sequence too) is read by loss type
   * 'unlikelihood' only. Returns the loss of each of the B rows.
   */
  rowLosses(logps: ArrayLike<number>, ref: ArrayLike<number> | undefined, lengths: ArrayLike<number>, k: number, extras?: RowLossExtras): Promise<Float32Array>;
  release(): Promise<void>;
}

export async function compileRowLoss(options: CombinedLossOptions, K: number, referenceFree: boolean, inputs: RowLossInputs = {}): Promise<RowLossGraph> {
  const g = new Graph('row_loss');
  const policy = g.input('policy', 'float32', [K, 'rows']);
  const reference = referenceFree ? undefined : g.input('reference', 'float32', [K, 'rows']);
  const lengths = g.input('lengths', 'float32', [K, 'rows']);
  const policySums = inputs.policySums ? g.input('policy_sums', 'float32', [K, 'rows']) : undefined;
  const rowWeights = inputs.rowWeights ? g.input('row_weights', 'float32', ['rows']) : undefined;
  const needsUnlikelihood = options.lossTypes.includes('unlikelihood');
  const logUnlikelihood = needsUnlikelihood ? g.input('log_unlikelihood', 'float32', [K, 'rows']) : undefined;
  const loss = preferenceLossPerRow({ policy, reference, lengths, policySums, rowWeights, logUnlikelihood }, options);
  const compiled = await CompiledGraph.compile({ loss }, { threads: 1 });
  return {
    async rowLosses(logps, ref, lens, k, extras = {}) {
      const b = logps.length / k;
      const feeds: Record<string, HostTensor> = {
        policy: { data: Float32Array.from(logps), dims: [k, b] },
        lengths: { data: Float32Array.from(lens), dims: [k, b] },
      };
      if (!referenceFree) {
        if (!ref) throw new Error('compileRowLoss: reference log-probs are required unless reference-free');
        feeds.reference = { data: Float32Array.from(ref), dims: [k, b] };
      }
      if (policySums) feeds.policy_sums = { data: Float32Array.from(extras.policySums ?? logps), dims: [k, b] };
      if (rowWeights) {
        if (!extras.rowWeights) throw new Error('compileRowLoss: row weights are required with rowWeights');
        feeds.row_weights = { data: Float32Array.from(extras.rowWeights), dims: [b] };
      }
      if (needsUnlikelihood) {
        if (!extras.logUnlikelihood) throw new Error("compileRowLoss: loss type 'unlikelihood' needs the per-sequence log(1 - p) sums");
        feeds.log_unlikelihood = { data: Float32Array.from(extras.logUnlikelihood), dims: [k, b] };
      }
      return (await compiled.run(feeds)).loss.data as Float32Array;
    },
    release: () => compiled.release(),
  };
}
