/**
 * The Node implementation of OrtPlatform (ort-platform-types.ts): onnxruntime-node, the cores
 * of os.availableParallelism, and the device probe of device.ts. The browser build replaces
 * this module with ort-platform.browser.ts.
 */
import { availableParallelism } from 'node:os';
import * as ort from 'onnxruntime-node';
import { openCachedSession } from './compile-cache.js';
import { resolveDevice } from './device.js';
import type { OrtPlatform } from './ort-platform-types.js';

export const platform: OrtPlatform = { name: 'node', ort, writesPreallocatedOutputs: true, cores: availableParallelism, resolveDevice, openCached: openCachedSession };
