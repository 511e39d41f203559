// Run by scripts/check-package.sh inside a fresh project that installed the packed dpo-ts and the
// registry's @huggingface/transformers: both in ONE Node process (one native onnxruntime), a tiny
// DPO run, an ONNX export of the result and transformers.js generating with that export, token
// for token as dpo-ts does.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { env, pipeline } from '@huggingface/transformers';
import { DPOTrainer, exportOnnx, generate, loadPretrained } from 'dpo-ts';

const work = resolve(process.argv[2] ?? 'interop');
mkdirSync(work, { recursive: true });
const base = resolve('node_modules/dpo-ts/assets/brown-gpt2');

const pairs = [
  ['The movie was', ' great and fun.', ' bad and dull.'],
  ['Our trip to the city', ' was a joy.', ' was a mess.'],
  ['The food at the hotel', ' was lovely.', ' was awful.'],
  ['My new neighbour', ' is kind.', ' is rude.'],
].map(([prompt, chosen, rejected]) => ({ prompt, chosen, rejected }));
const data = join(work, 'prefs.jsonl');
writeFileSync(data, pairs.map((r) => JSON.stringify(r)).join('\n') + '\n');

const quiet = { start() {}, update() {}, stop() {}, log() {} };
const result = await new DPOTrainer(
  { model: base, data, output: join(work, 'run'), maxSteps: 2, batchSize: 2, learningRate: 1e-3, seed: 1 },
  { progress: quiet },
).train();
if (result.steps !== 2) throw new Error(`expected 2 DPO steps, got ${result.steps}`);

await exportOnnx({ model: join(work, 'run'), output: join(work, 'web', 'tiny-dpo') });

const prompt = 'The movie was';
const trained = await loadPretrained(join(work, 'run'));
const ours = await generate(trained, [prompt], { maxNewTokens: 12, doSample: false });

env.localModelPath = join(work, 'web') + '/';
env.allowRemoteModels = false;
const generator = await pipeline('text-generation', 'tiny-dpo', { dtype: 'fp32' });
const [out] = await generator(prompt, { max_new_tokens: 12, do_sample: false });
const theirs = out.generated_text.slice(prompt.length);
if (theirs !== ours.completions[0][0]) {
  throw new Error(`transformers.js generated ${JSON.stringify(theirs)}, dpo-ts ${JSON.stringify(ours.completions[0][0])}`);
}
console.log(`interop: trained 2 DPO steps, exported, transformers.js generated the same greedy text: ${JSON.stringify(theirs)}`);
