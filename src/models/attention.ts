/** Attention pieces shared by every family, written as transformers computes them. */
import type { Graph, Tensor } from '../engine/graph.js';
import { checkpoint } from '../engine/checkpoint.js';
import * as op from '../engine/ops.js';
import { causalMask } from '../engine/nn.js';
import type { Dim } from '../engine/shape.js';
import type { ForwardInputs, KeyValue } from './types.js';

/** [B, T, H*Dh] -> [B, H, T, Dh]. */
export function splitHeads(x: Tensor, heads: number, headDim: number): Tensor {
  const [b, t] = x.shape;
  return op.transpose(op.reshape(x, [b, t, heads, headDim]), [0, 2, 1, 3]);
}

/** [B, H, T, Dh] -> [B, T, H*Dh]. */
export function mergeHeads(x: Tensor): Tensor {
  const [b, h, t, d] = x.shape;
  return op.reshape(op.transpose(x, [0, 2, 1, 3]), [b, t, typeof h === 'number' && typeof d === 'number' ? h * d : -1]);
}

/** Appends this step's keys/values to the cache along the position axis. */
export function withPast(kv: KeyValue, past: KeyValue | undefined): KeyValue {
  if (!past) return kv;
  return { key: op.concat([past.key, kv.key], 2), value: op.concat([past.value, kv.value], 2) };
}

/** What {@link attentionMask} reads of the forward's inputs. */
export type MaskInputs = Pick<ForwardInputs, 'attentionMask' | 'positionIds' | 'branchIds'>;

/**
 * The additive attention bias [B or 1, 1, T, S] (0 = visible, the dtype's lowest = hidden) that
 * every layer adds to its scores: query t (the last T of S positions) may see key s when s is not
 * in its future and the key is not padding. With `slidingWindow` w, also only the keys less than
 * w positions back (transformers' sliding_window_overlay: kv_idx > q_idx - w), counted in cache
 * positions, so a KV-cache step sees exactly what the full forward sees. Built once per forward
 * (one pass over [B, 1, T, S]) and shared by the layers.
 *
 * `inputs.attentionMask` is float 0/1 (0 = padding), or int64 segment ids of packed sequences
 * (padding-free batches, no cache: S = T): 0 = padding, and a query sees only earlier keys of its
 * own segment (block-diagonal causal). With segment ids the sliding window counts
 * `inputs.positionIds` (query position - key position < w), not indices in the row: positions
 * restart per segment, and with prefix sharing a completion's positions continue from its prompt
 * while other completions lie between them in the row. `inputs.branchIds` (prefix sharing, with
 * segment ids only): 0 marks a segment's shared prompt, k >= 1 its completion k; a query of
 * completion k then sees only the prompt's keys and earlier keys of completion k, i.e. exactly
 * the keys the unshared sequence prompt ++ completion k has (data/pack.ts, packSharedPrefix).
 *
 * Why a bias is exact here: every query sees at least one key, so the softmax's maximum is a real
 * score, lowest + score rounds to lowest (the value Where would write), exp(lowest - max) is
 * exactly 0, and the gradient reaching a hidden score, p (g - sum(g p)), is exactly 0 too. A
 * padding query sees its own key only (a real query always sees itself anyway): with no visible
 * key at all, its row would be uniform whatever the scores, and the bias's gradient would not be
 * that constant's zero. Only outputs at padding positions differ from transformers (which
 * averages every value there); nothing reads them.
 */
export function attentionMask(g: Graph, query: Tensor, key: Tensor, inputs: MaskInputs, slidingWindow?: number): Tensor {
  const t: Dim = query.shape[2];
  const s: Dim = key.shape[2];
  const paddingMask = inputs.attentionMask;
  const segmented = paddingMask?.dtype === 'int64';
  if (inputs.branchIds && !segmented) throw new Error('attentionMask: branch ids (prefix sharing) need int64 segment ids as the attention mask');
  let visible = causalMask(g, t, s, key);
  // By positions (segment ids with position ids): [B, 1, T, T]; else by indices: [T, S].
  const byPositions = slidingWindow !== undefined && segmented && inputs.positionIds !== undefined;
  if (slidingWindow !== undefined && !byPositions) visible = op.and(visible, windowMask(g, t, s, key, slidingWindow));
  if (paddingMask) {
    visible = op.reshape(visible, [1, 1, t, s]);
    if (segmented) {
      if (t !== s) throw new Error(`attentionMask: int64 segment ids (packed sequences) need queries = keys (no cache), got ${t} queries and ${s} keys`);
      const segments = op.unsqueeze(paddingMask, 1); // [B, 1, T]
      visible = op.and(op.and(visible, pairwise(segments, op.equal)), op.greater(op.unsqueeze(segments, 2), 0));
      if (byPositions) {
        const positions = op.unsqueeze(op.cast(inputs.positionIds as Tensor, 'int32'), 1); // [B or 1, 1, T]
        visible = op.and(visible, op.less(pairwise(positions, op.sub), slidingWindow as number));
      }
      if (inputs.branchIds) {
        const branches = op.unsqueeze(inputs.branchIds, 1); // [B, 1, T]
        visible = op.and(visible, op.or(op.equal(op.unsqueeze(branches, 2), op.scalar(g, 0, 'int64')), pairwise(branches, op.equal)));
      }
    } else {
      visible = op.and(visible, op.greater(op.unsqueeze(op.unsqueeze(paddingMask, 1), 1), 0.5));
    }
    visible = op.or(visible, op.reshape(diagonal(g, t, s, key), [1, 1, t, s]));
  } else visible = op.reshape(visible, [1, 1, t, s]);
  return op.where(visible, op.scalar(g, 0, query.dtype), lowest(query.dtype));
}

/** [B, 1, T, T]: f(x at the query, x at the key) for a per-token x [B, 1, T]. */
function pairwise(x: Tensor, f: (a: Tensor, b: Tensor) => Tensor): Tensor {
  return f(op.unsqueeze(x, 3), op.unsqueeze(x, 2));
}

/** Boolean [T, S]: key s is query t's own position (the last T of S). int32 positions, as causalMask. */
function diagonal(g: Graph, t: Dim, s: Dim, key: Tensor): Tensor {
  const rows = op.arange(g, t, 'int32', key);
  const q = t === s ? rows : op.add(rows, op.cast(op.sub(op.reshape(op.dimTensor(g, s, key), []), op.reshape(op.dimTensor(g, t, key), [])), 'int32'));
  return op.equal(op.unsqueeze(op.arange(g, s, 'int32', key), 0), op.unsqueeze(q, 1));
}

/** Boolean [T, S]: key s is fewer than `window` positions behind query t (the last T of S). */
function windowMask(g: Graph, t: Dim, s: Dim, key: Tensor, window: number): Tensor {
  const rows = op.arange(g, t, 'int32', key);
  const q = t === s ? rows : op.add(rows, op.cast(op.sub(op.reshape(op.dimTensor(g, s, key), []), op.reshape(op.dimTensor(g, t, key), [])), 'int32'));
  const k = op.arange(g, s, 'int32', key);
  return op.less(op.sub(op.unsqueeze(q, 1), op.unsqueeze(k, 0)), window);
}

function lowest(dtype: string): number {
  return dtype === 'float64' ? -1.7976931348623157e308 : -3.4028234663852886e38;
}

/**
 * softmax(q k^T * scale + mask) v with grouped-query heads: query head h reads kv head
 * h / (H / Hkv), as transformers' repeat_kv. q [B, H, T, Dh], k/v [B, Hkv, S, Dh], `mask` the
 * additive bias [B or 1, 1, T, S] of attentionMask (built once per forward, shared by the layers).
 *
 * The scale is applied to q ([.., T, Dh]) rather than to the scores ([.., T, S]). Grouped heads
 * are not materialised (no repeat_kv copy): q is viewed as [B, Hkv, H/Hkv, T, Dh] and the
 * matmuls broadcast k and v over the group axis. Without dropout on the probabilities the
 * scores and probabilities ([.., T, S] each) are recomputed in the backward rather than kept
 * (checkpoint); a dropout mask cannot be drawn twice, so with dropout they are kept.
 *
 * `softcap` (Gemma 2's attn_logit_softcapping) bounds the scaled scores, tanh(s / cap) * cap,
 * before the mask.
 *
 * The mask is added, not selected with Where: the same values forward (see attentionMask), and
 * its gradient is the identity, so the backward has no mask pass at all (Where cost one pass over
 * [B, H, T, S] forward, one in the recomputation and one backward).
 */
export function scaledDotProductAttention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  mask: Tensor,
  scale: number,
  probsDropout?: (probs: Tensor) => Tensor,
  softcap?: number,
): Tensor {
  const [b, heads, t, d] = q.shape as [Dim, number, Dim, number];
  const kvHeads = k.shape[1] as number;
  const nRep = heads / kvHeads;
  const grouped = nRep !== 1;
  const qs = op.mul(q, scale);
  const qq = grouped ? op.reshape(qs, [b, kvHeads, nRep, t, d]) : qs;
  const kk = grouped ? op.unsqueeze(k, 2) : k;
  const vv = grouped ? op.unsqueeze(v, 2) : v;
  const m = grouped ? op.unsqueeze(mask, 1) : mask;
  const attend = ([qx, kx, vx]: readonly Tensor[]): Tensor[] => {
    const raw = op.matmul(qx, op.transposeLast2(kx));
    const scores = softcap === undefined ? raw : op.mul(op.tanh(op.mul(raw, 1 / softcap)), softcap);
    const masked = op.add(scores, m);
    const probs = op.softmax(masked, -1);
    return [op.matmul(probsDropout ? probsDropout(probs) : probs, vx)];
  };
  const [out] = probsDropout ? attend([qq, kk, vv]) : checkpoint([qq, kk, vv], attend);
  return grouped ? op.reshape(out, [b, heads, t, d]) : out;
}
