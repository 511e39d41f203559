/** `dpo models`: the supported model types and what each supports, read from the model registry. */
import type { Command } from 'commander';
import { z } from 'zod';
import { option } from '../config/option.js';
import { modelTypes, type ModelTypeInfo } from '../models/registry.js';
import { printJson, type CliContext } from './context.js';
import { addOptions } from './options.js';
import { configFromFlags, optionsFromSchema } from './schema-options.js';

const EXAMPLES = `
Examples:
  $ dpo models
  $ dpo models --json | jq '.[] | select(.modelType == "qwen3")'

A model folder is supported when its config.json has one of these model_type values. LoRA
targets: every linear projection LoRA can adapt (--lora-target-modules takes these names, or
all-linear); the starred ones are the default (PEFT's for that model type).`;

/** One row of `dpo models --json`. */
export interface ModelTypeRow {
  modelType: string;
  transformersClass: string;
  loraTargets: string[];
  loraDefaultTargets: string[];
  slidingWindow: string | null;
  positions: string;
  kvCache: boolean;
}

export function modelTypeRows(): ModelTypeRow[] {
  return modelTypes().map((m: ModelTypeInfo) => ({
    modelType: m.modelType,
    transformersClass: m.transformersClass,
    loraTargets: [...m.linearRoles],
    loraDefaultTargets: [...m.loraDefaultTargets],
    slidingWindow: m.slidingWindow || null,
    positions: m.positions,
    kvCache: m.kvCache,
  }));
}

/** The rows as an aligned plain-text table. */
export function formatModelTable(rows: readonly ModelTypeRow[]): string {
  const header = ['model_type', 'transformers class', 'LoRA targets (* default)', 'sliding window', 'KV cache', 'positions'];
  const cells = rows.map((r) => [
    r.modelType,
    r.transformersClass,
    r.loraTargets.map((t) => (r.loraDefaultTargets.includes(t) ? `${t}*` : t)).join(' '),
    r.slidingWindow ?? '-',
    r.kvCache ? 'yes' : 'no',
    r.positions,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (c: readonly string[]): string => c.map((x, i) => (i === c.length - 1 ? x : x.padEnd(widths[i]))).join('  ');
  return [line(header), ...cells.map(line)].join('\n') + '\n';
}

/** The flags of `dpo models`. */
const ModelsFlagsSchema = z.object({ json: option(z.boolean().default(false), 'print one JSON array instead of a table', { group: 'checkpoints' }) }).strict();
const MODELS_OPTIONS = optionsFromSchema(ModelsFlagsSchema);

export function register(program: Command, ctx: CliContext): void {
  const cmd = program.command('models').description('list the supported model types (config.json model_type) and what each supports');
  addOptions(cmd, MODELS_OPTIONS, ModelsFlagsSchema);
  cmd.addHelpText('after', EXAMPLES).action((flags: Record<string, unknown>) => {
    const opts = configFromFlags(ModelsFlagsSchema, MODELS_OPTIONS, flags);
    const rows = modelTypeRows();
    if (opts.json) printJson(ctx, rows);
    else ctx.io.stdout.write(formatModelTable(rows));
  });
}
