/**
 * The value head of PPO: a scalar linear head on the policy's final hidden states (after the last
 * norm), V(s_t) = w · h_t + b, read at the positions that predict each response token, so that
 * value t and log-prob t belong to the same state. It shares the policy's body, as TRL's
 * AutoModelForCausalLMWithValueHead (and Ziegler et al.) do.
 *
 * Storage: `v_head.summary.weight` [1, hidden] and `v_head.summary.bias` [1], TRL's key names,
 * inside the model's own model.safetensors. That is the file layout TRL's
 * AutoModelForCausalLMWithValueHead.save_pretrained writes and from_pretrained reads back, so a
 * dpo-ts PPO model continues in TRL with its critic; transformers' AutoModelForCausalLM loads the
 * same folder and ignores the two extra keys (listed as unused, as it does for TRL's own saves),
 * and dpo-ts reports them as ignored checkpoint keys. A separate file would keep plain loaders
 * quiet but TRL would silently start a fresh critic.
 */
import type { Tensor } from '../../engine/graph.js';
import { linearT } from '../../engine/nn.js';
import * as op from '../../engine/ops.js';
import { join } from 'node:path';
import { openCheckpoint } from '../../io/hf-folder.js';
import { writeSafetensors } from '../../io/safetensors-write.js';
import { DpoError } from '../../errors.js';

export const VALUE_HEAD_WEIGHT = 'v_head.summary.weight';
export const VALUE_HEAD_BIAS = 'v_head.summary.bias';

export function valueHeadShapes(hiddenSize: number): Map<string, readonly number[]> {
  return new Map<string, readonly number[]>([
    [VALUE_HEAD_WEIGHT, [1, hiddenSize]],
    [VALUE_HEAD_BIAS, [1]],
  ]);
}

/**
 * A fresh head: weight and bias 0, so every value starts at 0. TRL starts from torch.nn.Linear's
 * random init instead; a random critic's values differ from token to token by more than a
 * sentiment score does, and those differences enter every TD error, so the first updates would
 * follow the critic's noise. From 0 the first advantages are the (discounted) returns, and no
 * gradient reaches the shared body through the head until the head itself has learned.
 */
export function initValueHead(hiddenSize: number): Map<string, Float32Array> {
  return new Map([
    [VALUE_HEAD_WEIGHT, new Float32Array(hiddenSize)],
    [VALUE_HEAD_BIAS, new Float32Array(1)],
  ]);
}

/**
 * The value head stored in a model folder (a PPO output, or TRL's value-head save), or undefined
 * when the folder has none. A head of the wrong shape is an error naming the tensor.
 */
export async function readValueHead(dir: string, hiddenSize: number): Promise<Map<string, Float32Array> | undefined> {
  const ckpt = await openCheckpoint(dir);
  try {
    const names = new Set(ckpt.names());
    if (!names.has(VALUE_HEAD_WEIGHT) || !names.has(VALUE_HEAD_BIAS)) return undefined;
    const out = new Map<string, Float32Array>();
    for (const [name, shape] of valueHeadShapes(hiddenSize)) {
      const found = ckpt.info(name).shape;
      if (found.length !== shape.length || found.some((d, i) => d !== shape[i])) {
        throw new DpoError(`${dir}: tensor "${name}" has shape [${found.join(', ')}], expected [${shape.join(', ')}]`);
      }
      out.set(name, (await ckpt.read(name)).data);
    }
    return out;
  } finally {
    await ckpt.close();
  }
}

/** [M] values at the flat positions n*T + t of `hidden` [N, T, hidden]. */
export function valuesAt(params: Readonly<Record<string, Tensor>>, hidden: Tensor, positions: Tensor, hiddenSize: number): Tensor {
  const h = op.gather(op.reshape(hidden, [-1, hiddenSize]), positions);
  return op.add(op.reshape(linearT(h, params[VALUE_HEAD_WEIGHT]), [-1]), params[VALUE_HEAD_BIAS]);
}

/**
 * With LoRA the output folder is a PEFT adapter, whose adapter_model.safetensors PEFT reads as
 * adapters only, so the value head goes beside it in a file of its own (TRL writes it beside a
 * PEFT adapter too, as v_head-only pytorch_model.bin; safetensors here, same key names).
 */
export const VALUE_HEAD_FILE = 'v_head.safetensors';

/** Writes the value head of `params` to `dir`/{@link VALUE_HEAD_FILE} (float32). */
export async function saveValueHead(dir: string, params: ReadonlyMap<string, Float32Array>, hiddenSize: number): Promise<void> {
  const tensors = new Map<string, { data: Float32Array; shape: number[] }>();
  for (const [name, shape] of valueHeadShapes(hiddenSize)) tensors.set(name, { data: params.get(name) as Float32Array, shape: [...shape] });
  await writeSafetensors(join(dir, VALUE_HEAD_FILE), tensors);
}
