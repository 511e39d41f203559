/**
 * `dpo studio`: preference-tune a model in a browser tab. Serves a page on 127.0.0.1 that loads
 * the model into the tab, shows two completions per prompt, takes the choice by keyboard, trains
 * DPO there (onnxruntime-web: WebGPU, or wasm), shows the metrics, compares the trained model
 * with the reference and downloads the result (a PEFT adapter by default, the model with --full).
 * Runs until Ctrl-C.
 */
import type { Command } from 'commander';
import { z } from 'zod';
import { option } from '../config/option.js';
import { PromptSourceSchema, SamplingOptionsSchema } from '../config/sampling.js';
import { DpoError } from '../errors.js';
import { LoraOptionsSchema } from '../train/core/config.js';
import { DEFAULT_STUDIO_PORT, runStudio } from '../studio/run.js';
import type { CliContext } from './context.js';
import { addOptions } from './options.js';
import { configFromFlags, optionsFromSchema } from './schema-options.js';
import { untilInterrupted } from './signals.js';

const sampling = SamplingOptionsSchema.shape;

export const StudioFlagsSchema = z
  .object({
    model: option(z.string().min(1).optional(), 'model folder (config.json, one model.safetensors, tokenizer.json) loaded into the tab', {
      arg: 'path',
      group: 'model',
      defaultText: 'the shipped model (assets/brown-gpt2)',
    }),
    prompts: option(PromptSourceSchema.shape.prompts.optional(), 'prompts file or folder to label', { arg: 'path', group: 'data', defaultText: 'the built-in sentiment prompts' }),
    device: option(z.enum(['auto', 'webgpu', 'cpu']).default('auto'), "where the tab trains: auto (WebGPU when the browser gives an adapter, else wasm), webgpu, or cpu (wasm)", {
      arg: 'device',
      group: 'runtime',
    }),
    beta: option(z.number().positive().default(0.1), "DPO's beta", { group: 'loss' }),
    learningRate: option(z.number().positive().optional(), 'AdamW learning rate', { arg: 'lr', group: 'optimisation', defaultText: '1e-3 with LoRA, 1e-4 with --full' }),
    steps: option(z.number().int().positive().default(10), 'optimizer steps per press of t', { arg: 'n', group: 'optimisation' }),
    lora: LoraOptionsSchema.optional(),
    full: option(z.boolean().default(false), 'full fine-tuning instead of LoRA (small models: 16 bytes per parameter in the tab); the download is then the whole model', {
      group: 'optimisation',
    }),
    maxNewTokens: option(z.number().int().positive().default(24), 'new tokens per completion at most', { group: 'generation' }),
    seed: sampling.seed,
    port: option(z.number().int().min(0).default(DEFAULT_STUDIO_PORT), 'port on 127.0.0.1 (0: any free port)', { group: 'runtime' }),
  })
  .strict();

export const STUDIO_OPTIONS = optionsFromSchema(StudioFlagsSchema);

const EXAMPLES = `
Open the printed address in Chrome or Edge (WebGPU; other browsers train on wasm). The tab
downloads the model, samples two completions per prompt with it, and trains on the pairs you
pick. Keys: 1/2 pick the better completion, s skip, t train (--steps DPO steps on every pair
labelled so far; the table and chart show loss, implicit rewards and accuracy), g generate with
the trained model beside the reference, d download the result. The tab trains LoRA adapters
(PEFT's defaults; --lora-r, --lora-alpha, --lora-dropout, --lora-target-modules change them) and
downloads a PEFT adapter (adapter_config.json, adapter_model.safetensors: put them in one folder;
it names this model folder as its base); with --full it trains every weight and downloads
config.json, model.safetensors and the tokenizer files.

Examples:
  $ dpo studio
  $ dpo studio --model runs/sft --prompts prompts.jsonl --steps 20 --lora-r 16
  $ dpo generate --model ~/Downloads/studio-adapter --prompts prompts.jsonl --output samples.jsonl
  $ dpo studio --full                          # the shipped model is small enough`;

export function register(program: Command, ctx: CliContext): void {
  const cmd = program.command('studio').description('preference-tune a model in a browser tab: label pairs by keyboard, train DPO there (WebGPU or wasm), compare, download');
  addOptions(cmd, STUDIO_OPTIONS, StudioFlagsSchema);
  cmd.addHelpText('after', EXAMPLES).action(async (flags: Record<string, unknown>) => {
    const options = configFromFlags(StudioFlagsSchema, STUDIO_OPTIONS, flags);
    if (options.port > 65535) throw new DpoError(`--port: expected a port number up to 65535, got '${options.port}'`);
    if (options.full && options.lora) throw new DpoError('--full trains every weight: drop the --lora-* flags, or drop --full to train LoRA adapters');
    const log = (message: string): void => void ctx.io.stderr.write(`${message}\n`);
    const running = await runStudio({ ...options, log });
    const interrupted = untilInterrupted();
    log(`dpo studio: ${running.session.model}, ${running.session.prompts.length} prompts; open ${running.url} in a browser (Ctrl-C to stop)`);
    await interrupted;
    await running.close();
    log('dpo studio: stopped');
  });
}
