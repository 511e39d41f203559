/**
 * `dpo export onnx`: a trained model as an ONNX folder that transformers.js (and so a browser or
 * a Node app) loads with `pipeline('text-generation', ...)`.
 */
import type { Command } from 'commander';
import { z } from 'zod';
import { option } from '../config/option.js';
import { DpoError } from '../errors.js';
import { exportOnnx, type ExternalDataMode } from '../export/onnx-folder.js';
import { printJson, type CliContext } from './context.js';
import { addOptions } from './options.js';
import { configFromFlags, optionsFromSchema } from './schema-options.js';
import { stopOnSignals } from './signals.js';

const EXAMPLES = `
Writes Hugging Face Optimum's layout for transformers.js: DIR/onnx/model.onnx (fp32, the decoder
with past_key_values.N.key/value inputs and present.N.key/value outputs), config.json,
generation_config.json and the tokenizer files. DIR must be new, empty, or an earlier export.

Examples:
  $ dpo export onnx --model runs/gpt2-dpo --output web/gpt2-dpo
  $ dpo export onnx --model runs/qwen-lora --output web/qwen   # a LoRA adapter folder: merged first

Then, in Node or a browser (npm install @huggingface/transformers):
  env.localModelPath = 'web/'; env.allowRemoteModels = false;
  const generator = await pipeline('text-generation', 'gpt2-dpo', { dtype: 'fp32' });`;

const MODES: readonly ExternalDataMode[] = ['auto', 'always', 'never'];

/** The flags of `dpo export onnx`. */
const ExportOnnxSchema = z
  .object({
    model: option(z.string().min(1), 'model folder, hub id ("org/name[@revision]") or LoRA adapter folder', { arg: 'path|hub-id' }),
    output: option(z.string().min(1), 'folder to write (new, empty, or an earlier export)', { arg: 'dir' }),
    // A string checked below (not an enum), for its one-line error naming the modes.
    externalData: option(z.string().default('auto'), `weights in onnx/model.onnx_data: ${MODES.join(', ')} (auto: above 1.5 GiB, protobuf's limit is 2 GiB)`, { arg: 'mode', group: 'checkpoints' }),
  })
  .strict();

const EXPORT_ONNX_OPTIONS = optionsFromSchema(ExportOnnxSchema);

export function register(program: Command, ctx: CliContext): void {
  const exportCommand = program.command('export').description('export a model for other runtimes (onnx: transformers.js)');
  const onnx = exportCommand.command('onnx').description('the model as an ONNX folder with KV cache, laid out as Optimum exports it for transformers.js');
  addOptions(onnx, EXPORT_ONNX_OPTIONS, ExportOnnxSchema);
  onnx
    .addHelpText('after', EXAMPLES)
    .action(async (opts: Record<string, unknown>) => {
      const flags = configFromFlags(ExportOnnxSchema, EXPORT_ONNX_OPTIONS, opts);
      const mode = flags.externalData as ExternalDataMode;
      if (!MODES.includes(mode)) throw new DpoError(`--external-data: expected one of ${MODES.join(', ')}, got '${flags.externalData}'`);
      const signals = stopOnSignals((m) => ctx.io.stderr.write(`${m}\n`), undefined, 'stopping the export and removing what it wrote so far');
      let result;
      try {
        result = await exportOnnx({ model: flags.model, output: flags.output, externalData: mode, signal: signals.signal });
      } catch (e) {
        if (!signals.received) throw e;
        ctx.io.stderr.write(`dpo: ${(e as Error).message}\n`);
        ctx.exitCode = signals.exitCode();
        return;
      } finally {
        signals.dispose();
      }
      for (const name of result.missing) ctx.io.stderr.write(`dpo: warning: the model folder has no ${name}; copy one into ${flags.output} to load the tokenizer with transformers.js\n`);
      ctx.io.stderr.write(`exported ${result.modelType} (${result.parameters} parameters, ${(result.bytes / 2 ** 20).toFixed(1)} MiB) -> ${flags.output}\n`);
      printJson(ctx, result);
    });
}
