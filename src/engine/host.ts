/**
 * What a run's numbers depend on beyond its seed: ONNX Runtime's intra-op thread count (it sets how
 * kernels partition their reductions, so float sums round differently with another count) and the
 * CPU (its vector kernels). With both the same, a seeded run is byte-identical; with either
 * changed, logits move in the last bits, and a run that trains on its own samples (PPO, online
 * DPO) can diverge from one flipped token. So they are resolved explicitly and recorded.
 */
import { availableParallelism, cpus } from 'node:os';
import { sessionThreads } from './runtime.js';

/**
 * The intra-op thread count a run uses for `requested` (undefined: one per core this process may
 * use), as every session of the run gets it. Resolved here rather than left to ORT's default so
 * that it can be recorded and compared on resume.
 */
export function resolveThreads(requested?: number): number {
  return sessionThreads(requested ?? availableParallelism());
}

/** The machine a run ran on, as recorded beside its results. */
export interface HostInfo {
  /** ONNX Runtime intra-op threads. */
  threads: number;
  /** The CPU's model name (os.cpus()), '' where the platform does not say. */
  cpu: string;
  /** Cores this process may use. */
  cores: number;
}

export function hostInfo(threads?: number): HostInfo {
  return { threads: resolveThreads(threads), cpu: cpus()[0]?.model.trim() ?? '', cores: availableParallelism() };
}
