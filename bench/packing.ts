/**
 * Padding-free batches vs padded ones: the same DPO step (bench/dpo.ts's loss, optimizer and
 * random weights) on pairs whose lengths vary (default 32-512 tokens, a quarter of each the
 * prompt), padded to the batch's longest sequence or packed into rows of that length
 * (`--padding-free`: data/pack.ts). Both run back to back in this process on the same batches.
 *
 *   npm run bench -- packing [--model gpt2-124m] [--variant full|lora] [--lengths 32-512] [--pairs 4]
 *                            [--batches 3] [--warmup 1] [--threads 2] [--rounds 1] [--profile DIR]
 *
 * With --rounds n each layout runs its batches n times, alternating which layout goes first
 * (both steps stay compiled; the warm-up steps run in the first round only). --profile writes
 * ORT's per-node profiles and prints each layout's summary of its last step (bench/dpo.ts).
 * cpu_ms_per_step is this process's CPU time (all threads) per step, less sensitive than wall
 * time to other load on the machine.
 *
 * Prints one "dpo_packing" line per layout: real (non-padding) tokens per second over the timed
 * steps (one per batch, after `--warmup` untimed steps), slots (rows·T) per step, and a
 * "dpo_packing_ratio" line (packed over padded tokens/s).
 */
import { collatePreferences, type PreferenceBatch } from '../src/data/collate.js';
import type { TokenizedPreference } from '../src/data/tokenize.js';
import type { HostTensor } from '../src/engine/runtime.js';
import type { Tensor } from '../src/engine/graph.js';
import { TrainStep } from '../src/engine/train-step.js';
import { createModel } from '../src/models/registry.js';
import { buildDpoLoss } from '../src/train/dpo/trainer.js';
import { buildPolicy } from '../src/train/core/policy.js';
import { scoredFeeds } from '../src/scoring/sequence-logps.js';
import { join } from 'node:path';
import { LORA, LOSS, LR, OPTIMIZER, flag, median, modelConfig, parseVariant, randomWeights, round, summariseProfiles } from './dpo.js';

/** Pairs with total lengths uniform in [min, max] (seeded): prompt a quarter, two completions. */
function variedRows(vocab: number, pairs: number, min: number, max: number, seed: number): TokenizedPreference[] {
  let s = seed >>> 0;
  const next = (): number => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
  const ids = (n: number): number[] => Array.from({ length: n }, () => Math.floor(next() * vocab));
  const length = (): number => min + Math.floor(next() * (max - min + 1));
  return Array.from({ length: pairs }, (_, i) => {
    const [a, b] = [length(), length()];
    const prompt = Math.max(1, Math.floor(Math.min(a, b) / 4));
    return { promptIds: ids(prompt), completionIds: [ids(a - prompt), ids(b - prompt)], origin: { file: 'random', line: i + 1 } };
  });
}

function stepFeeds(batch: PreferenceBatch, packed: boolean, vocab: number): Record<string, HostTensor> {
  const n = batch.numSequences;
  return {
    ...scoredFeeds(batch, { packed }),
    completion_lengths: { data: Float32Array.from(batch.completionLengths), dims: [n] },
    ref_logps: { data: Float32Array.from({ length: n }, (_, i) => -batch.completionLengths[i] * Math.log(vocab) + (i % 3)), dims: [n] },
  };
}

export async function main(args: string[]): Promise<void> {
  const name = flag(args, 'model') ?? 'gpt2-124m';
  const variant = parseVariant(flag(args, 'variant') ?? 'full');
  const [min, max] = (flag(args, 'lengths') ?? '32-512').split('-').map(Number);
  const pairs = Number(flag(args, 'pairs') ?? 4);
  const batches = Number(flag(args, 'batches') ?? 3);
  const warmup = Number(flag(args, 'warmup') ?? 1);
  const threads = Number(flag(args, 'threads') ?? 2);
  const rounds = Math.max(1, Number(flag(args, 'rounds') ?? 1));
  const profile = flag(args, 'profile');
  const model = createModel(modelConfig(name));
  const vocab = model.config.vocabSize;
  const policy = buildPolicy(model, randomWeights(model), variant === 'lora' ? LORA : undefined, 0);
  const weightsOf = policy.trainTransform ?? ((_g: unknown, p: Record<string, Tensor>) => p);
  const data = Array.from({ length: warmup + batches }, (_, b) => collatePreferences(variedRows(vocab, pairs, min, max, 11 + b), { padTokenId: 0 }));
  const layouts = [false, true].map((packed) => ({ packed, label: packed ? 'padding-free' : 'padded', times: [] as number[], cpu: [] as number[], tokens: 0, slots: 0 }));
  // Both steps stay compiled; rounds alternate which layout goes first (load drifts).
  const steps = new Map<boolean, TrainStep>();
  for (const { packed, label } of layouts) {
    const runtime = { threads, ...(profile ? { profilePrefix: join(profile, `packing_${name}-${variant}_${label}`) } : {}) };
    steps.set(packed, await TrainStep.create(
      policy.specs,
      (g, params) => buildDpoLoss(g, policy.model, weightsOf(g, params), LOSS, 2, false, undefined, { packed }),
      { ...OPTIMIZER },
      runtime,
    ));
  }
  for (let r = 0; r < rounds; r++) {
    for (const layout of r % 2 === 0 ? layouts : [...layouts].reverse()) {
      const step = steps.get(layout.packed) as TrainStep;
      for (const [b, batch] of data.entries()) {
        if (r > 0 && b < warmup) continue;
        const feeds = stepFeeds(batch, layout.packed, vocab);
        const cpu0 = process.cpuUsage();
        const t0 = performance.now();
        await step.step(feeds, LR);
        const ms = performance.now() - t0;
        const cpu = process.cpuUsage(cpu0);
        if (b < warmup) continue;
        layout.times.push(ms);
        layout.cpu.push((cpu.user + cpu.system) / 1000);
        layout.tokens += batch.attentionMask.reduce((a, v) => a + v, 0);
        layout.slots += (feeds.input_ids.dims[0] as number) * batch.seqLen;
      }
    }
  }
  for (const s of steps.values()) await s.release();
  const results: Record<string, number> = {};
  for (const l of layouts) {
    const ms = l.times.reduce((a, t) => a + t, 0);
    const n = l.times.length;
    results[l.label] = (l.tokens * 1000) / ms;
    console.log(
      JSON.stringify({
        bench: 'dpo_packing',
        model: name,
        variant,
        layout: l.label,
        real_tokens_per_second: round((l.tokens * 1000) / ms, 1),
        ms_per_step: round(median(l.times), 0),
        step_ms: l.times.map((t) => round(t, 0)),
        cpu_ms_per_step: round(median(l.cpu), 0),
        real_tokens_per_step: l.tokens / n,
        slots_per_step: l.slots / n,
        pairs,
        lengths: `${min}-${max}`,
        rounds,
        threads,
      }),
    );
  }
  console.log(JSON.stringify({ bench: 'dpo_packing_ratio', model: name, variant, tokens_per_second_ratio: round(results['padding-free'] / results.padded, 2) }));
  if (profile) for (const l of layouts) summariseProfiles(profile, `packing_${name}-${variant}_${l.label}`);
}
