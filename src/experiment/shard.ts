/**
 * Splitting the experiment's sweep over machines: shard i of N runs the units k with k mod N = i
 * (a unit is one seed's reference point or one seed's run of one method at one setting), so the
 * shards together run every unit once, and each writes only its own units' result files into the
 * shared output folder. The index comes from `--shard i/N`, or with `--shard N` from the job
 * engine: Kubernetes Indexed Jobs (JOB_COMPLETION_INDEX) or SLURM job arrays
 * (SLURM_ARRAY_TASK_ID, counted from SLURM_ARRAY_TASK_MIN).
 */
import { DpoError } from '../errors.js';

export interface Shard {
  /** 0-based. */
  index: number;
  count: number;
}

/** The whole sweep in one process. */
export const WHOLE: Shard = { index: 0, count: 1 };

function integer(v: string, what: string): number {
  if (!/^\d+$/.test(v.trim())) throw new DpoError(`--shard: ${what} must be a non-negative integer, got '${v}'`);
  return Number(v);
}

/** `i/N`, or `N` with the index from the environment (see the module comment). */
export function parseShard(spec: string, env: NodeJS.ProcessEnv = process.env): Shard {
  const parts = spec.split('/');
  if (parts.length > 2) throw new DpoError(`--shard: expected i/N or N, got '${spec}'`);
  const count = integer(parts[parts.length - 1], 'the shard count N');
  if (count < 1) throw new DpoError(`--shard: the shard count must be at least 1, got '${spec}'`);
  let index: number;
  if (parts.length === 2) index = integer(parts[0], 'the shard index i');
  else if (env.JOB_COMPLETION_INDEX !== undefined) index = integer(env.JOB_COMPLETION_INDEX, 'JOB_COMPLETION_INDEX');
  else if (env.SLURM_ARRAY_TASK_ID !== undefined) {
    index = integer(env.SLURM_ARRAY_TASK_ID, 'SLURM_ARRAY_TASK_ID') - integer(env.SLURM_ARRAY_TASK_MIN ?? '0', 'SLURM_ARRAY_TASK_MIN');
  } else {
    throw new DpoError(`--shard ${spec}: no shard index: give --shard i/${count}, or run as a Kubernetes Indexed Job (JOB_COMPLETION_INDEX) or a SLURM array task (SLURM_ARRAY_TASK_ID)`);
  }
  if (index < 0 || index >= count) throw new DpoError(`--shard: index ${index} is outside 0..${count - 1}`);
  return { index, count };
}

/** The items of `all` that shard `s` runs. */
export function shardItems<T>(all: readonly T[], s: Shard): T[] {
  return all.filter((_, k) => k % s.count === s.index);
}

/** The shard's own folder name, e.g. '1-of-4'. */
export function shardName(s: Shard): string {
  return `${s.index}-of-${s.count}`;
}
