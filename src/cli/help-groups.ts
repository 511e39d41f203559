/**
 * How `--help` lays out a command's flags: in the groups of TRL's config docs (model, data,
 * loss, optimisation, LoRA, reference, checkpoints, logging, runtime), each under its heading,
 * in the order of OPTION_GROUPS; within a group, in the schema's order.
 */
import { OPTION_GROUPS, type OptionGroup } from '../config/option.js';
import type { OptionSpec } from './option-spec.js';

const HEADINGS: Record<OptionGroup, string> = {
  model: 'Model',
  data: 'Data',
  loss: 'Loss and method',
  generation: 'Generation (sampling)',
  reward: 'Reward and judge',
  optimisation: 'Optimisation',
  lora: 'LoRA adapters',
  reference: 'Reference model',
  checkpoints: 'Output and checkpoints',
  logging: 'Logging and evaluation',
  runtime: 'Runtime',
};

/** The heading of a group in one command's help ('Output' where the group holds no checkpoint option). */
export function groupHeading(group: OptionGroup, specs: readonly OptionSpec[]): string {
  if (group === 'checkpoints' && !specs.some((s) => s.group === 'checkpoints' && /^(save|resume)/.test(s.key))) return 'Output:';
  return `${HEADINGS[group]}:`;
}

/** `specs` in help order: by group, stable within a group; specs without a group keep their place first. */
export function inHelpOrder(specs: readonly OptionSpec[]): OptionSpec[] {
  const rank = (s: OptionSpec): number => (s.group ? OPTION_GROUPS.indexOf(s.group) : -1);
  return specs.map((s, i) => ({ s, i })).sort((a, b) => rank(a.s) - rank(b.s) || a.i - b.i).map(({ s }) => s);
}
