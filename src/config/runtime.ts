/**
 * The runtime options every command that runs a model shares (ONNX Runtime threads and
 * execution provider): one schema, so each is described and defaulted once. Trainer configs
 * take them from here; `dpo generate`, `dpo evaluate`, `dpo label`... pick the ones their
 * library function supports.
 */
import { z } from 'zod';
import { DEVICE_REQUESTS } from '../engine/device.js';
import { option } from './option.js';

export const RuntimeOptionsSchema = z.object({
  threads: option(z.number().int().positive().optional(), 'ONNX Runtime intra-op threads (default: all cores; capped at the core count)', { group: 'runtime' }),
  device: option(z.enum(DEVICE_REQUESTS).default('cpu'), 'where graphs run: cpu, webgpu, cuda, or auto (a usable GPU, else cpu)', { arg: 'name', group: 'runtime' }),
});

export type RuntimeOptionsInput = z.input<typeof RuntimeOptionsSchema>;
