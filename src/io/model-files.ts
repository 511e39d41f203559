/** File names of a Hugging Face model folder, shared by the folder reader, writer and hub. */

export const CONFIG_FILE = 'config.json';
export const GENERATION_CONFIG_FILE = 'generation_config.json';
export const WEIGHTS_FILE = 'model.safetensors';
export const WEIGHTS_INDEX_FILE = 'model.safetensors.index.json';

/** Files that make up a tokenizer, copied along with a checkpoint when present. */
export const TOKENIZER_FILES = [
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'chat_template.jinja',
  'chat_template.json',
] as const;

/** Weight files a checkpoint owns; a new save replaces all of them, never mixes old and new. */
export function isWeightFile(name: string): boolean {
  return (
    name === WEIGHTS_FILE ||
    name === WEIGHTS_INDEX_FILE ||
    /^model-\d+-of-\d+\.safetensors$/.test(name) ||
    /^pytorch_model.*\.bin(\.index\.json)?$/.test(name)
  );
}

/** A PEFT LoRA adapter folder's files (adapter_model.bin: older PEFT versions). */
export const ADAPTER_CONFIG_FILE = 'adapter_config.json';
export const ADAPTER_WEIGHTS_FILE = 'adapter_model.safetensors';
export const ADAPTER_FILES: readonly string[] = [ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, 'adapter_model.bin'];
