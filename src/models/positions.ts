import type { Tensor } from '../engine/graph.js';
import * as op from '../engine/ops.js';
import type { KeyValue } from './types.js';

/** Position ids 0..T-1 (after any cached positions), shaped [1, T] to broadcast over the batch. */
export function defaultPositions(inputIds: Tensor, past: readonly KeyValue[] | undefined): Tensor {
  const g = inputIds.graph;
  const t = inputIds.shape[1];
  let pos = op.arange(g, t, 'int64', inputIds);
  if (past && past.length) {
    const pastLen = op.reshape(op.dimTensor(g, past[0].key.shape[2], past[0].key), []);
    pos = op.add(pos, pastLen);
  }
  return op.unsqueeze(pos, 0);
}
