/**
 * Memory of loading a bf16 checkpoint: `npm run bench -- load-memory [--hidden 512]
 * [--intermediate 1536] [--layers 2] [--vocab 8192]`. Writes a random Llama-shaped bf16 folder,
 * then measures the peak resident memory (VmHWM, reset through /proc/self/clear_refs) that
 * loadPretrained adds, against the float32 copy it must build plus the largest tensor. Prints one
 * JSON line; exits 1 when the peak exceeds that bound.
 */
import { open, mkdtemp, rm, writeFile, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { loadPretrained } from '../src/models/pretrained.js';
import { createModel } from '../src/models/registry.js';

function flag(args: string[], name: string, fallback: number): number {
  const at = args.indexOf(`--${name}`);
  return at >= 0 ? Number(args[at + 1]) : fallback;
}

async function procStatusKiB(field: string): Promise<number> {
  const text = await readFile('/proc/self/status', 'utf-8');
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text);
  if (!match) throw new Error(`/proc/self/status has no ${field}`);
  return Number(match[1]);
}

/** A bf16 safetensors file of random small values, written tensor by tensor. */
async function writeRandomBf16(path: string, tensors: { name: string; shape: number[] }[]): Promise<void> {
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let offset = 0;
  for (const t of tensors) {
    const bytes = t.shape.reduce((a, b) => a * b, 1) * 2;
    header[t.name] = { dtype: 'BF16', shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  const text = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(text.length));
  const handle = await open(path, 'w');
  try {
    await handle.write(Buffer.concat([len, text]));
    const chunk = new Uint16Array(1 << 20);
    let seed = 1;
    for (let i = 0; i < chunk.length; i++) {
      seed = (seed * 1103515245 + 12345) >>> 0;
      // sign, exponent 118..125 (|x| ~ 2^-9..2^-2), random mantissa
      chunk[i] = ((seed >>> 31) << 15) | ((118 + ((seed >>> 20) & 7)) << 7) | ((seed >>> 8) & 0x7f);
    }
    for (let left = offset; left > 0; left -= Math.min(left, chunk.byteLength)) {
      await handle.write(new Uint8Array(chunk.buffer, 0, Math.min(left, chunk.byteLength)));
    }
  } finally {
    await handle.close();
  }
}

export async function main(args: string[]): Promise<void> {
  const hidden = flag(args, 'hidden', 512);
  const config = {
    model_type: 'llama',
    architectures: ['LlamaForCausalLM'],
    hidden_size: hidden,
    intermediate_size: flag(args, 'intermediate', 1536),
    num_hidden_layers: flag(args, 'layers', 2),
    num_attention_heads: 8,
    num_key_value_heads: 8,
    vocab_size: flag(args, 'vocab', 8192),
    max_position_embeddings: 256,
    rms_norm_eps: 1e-6,
    tie_word_embeddings: false,
    torch_dtype: 'bfloat16',
  };
  const dir = await mkdtemp(join(tmpdir(), 'dpo-load-memory-'));
  try {
    const params = createModel(config).parameters();
    await writeFile(join(dir, 'config.json'), JSON.stringify(config));
    await writeRandomBf16(join(dir, 'model.safetensors'), params.map((p) => ({ name: p.name, shape: [...p.shape] })));
    const sizes = params.map((p) => p.shape.reduce((a, b) => a * b, 1) * 4);
    const fp32Bytes = sizes.reduce((a, b) => a + b, 0);
    const largest = Math.max(...sizes);

    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    gc();
    await writeFile('/proc/self/clear_refs', '5'); // resets VmHWM to the current RSS
    const before = await procStatusKiB('VmRSS');
    const loaded = await loadPretrained(dir, { tokenizer: false });
    const peak = await procStatusKiB('VmHWM');
    const addedBytes = (peak - before) * 1024;
    const bound = fp32Bytes + largest;
    const mb = (n: number) => Math.round(n / 1e5) / 10;
    console.log(
      JSON.stringify({
        bench: 'load-memory',
        checkpointDtype: loaded.dtype,
        parameters: fp32Bytes / 4,
        fp32MB: mb(fp32Bytes),
        largestTensorMB: mb(largest),
        peakAddedMB: mb(addedBytes),
        boundMB: mb(bound),
        withinBound: addedBytes <= bound,
      }),
    );
    if (addedBytes > bound) process.exitCode = 1;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
