/** model_type (config.json) -> model builder. */
import { DpoError } from '../errors.js';
import { GPT2 } from './gpt2.js';
import { GPTJ } from './gptj.js';
import { GPTNeoX } from './gpt-neox.js';
import { Llama } from './llama.js';
import type { CausalLM } from './types.js';

type Raw = Readonly<Record<string, unknown>>;

const BUILDERS: Record<string, (config: Raw) => CausalLM> = {
  gpt2: (c) => new GPT2(c),
  gptj: (c) => new GPTJ(c),
  gpt_neox: (c) => new GPTNeoX(c),
  llama: (c) => new Llama(c, 'llama'),
  qwen2: (c) => new Llama(c, 'qwen2'),
  mistral: (c) => new Llama(c, 'mistral'),
};

export function supportedModelTypes(): string[] {
  return Object.keys(BUILDERS).sort();
}

/** Builds the model a config.json describes; an unknown model_type lists the supported ones. */
export function createModel(config: Raw): CausalLM {
  const type = config.model_type;
  const build = typeof type === 'string' ? BUILDERS[type] : undefined;
  if (!build) {
    throw new DpoError(`config.json: model_type ${JSON.stringify(type)} is not supported (supported: ${supportedModelTypes().join(', ')})`);
  }
  return build(config);
}
