/**
 * The experiment's results on disk, and building frontier.jsonl, summary.json and report.html from
 * them. Every unit of the sweep (a seed's reference point or run) writes its own result file,
 * `points/seed-<s>/<run>.json`, atomically when it is done, and every seed its `seed.json` (pairs,
 * reward model accuracy); `experiment.json` holds the settings and the list of units. So shards
 * (shard.ts) on other machines can share one output folder without touching each other's files,
 * and {@link mergeExperiment} builds the same outputs from whatever has finished, whether one
 * process ran everything or N shards did; units without a result are listed as missing.
 */
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { hostInfo, type HostInfo } from '../engine/host.js';
import { DpoError } from '../errors.js';
import { writeBytesAtomic } from '../io/atomic.js';
import type { FrontierPoint, WinRate } from './frontier.js';
import { runName, type RunWinRates, type TracePoint } from './methods.js';
import { pooledInterval, poolPoints } from './pooling.js';
import { readFrontier } from './reading.js';
import { writeExperimentReport } from './report.js';
import type { ExperimentSettings, PooledWinRate, RunRecord, SeedInfo, SentimentExperimentSummary } from './summary.js';

export type { PooledWinRate, RunRecord, SeedInfo, SentimentExperimentSummary } from './summary.js';

/** A unit of the sweep as experiment.json lists it. */
export interface UnitRecord {
  seed: number;
  method: string;
  setting: string;
  /** Its result file, relative to the output folder. */
  file: string;
}

/** experiment.json: what every shard of the run must agree on. */
export interface ExperimentPlan {
  command: string;
  settings: ExperimentSettings;
  /** The thread count every session uses (results are byte-repeatable only with the same). */
  host: { threads: number };
  units: UnitRecord[];
}

/** A unit's result file. */
export interface UnitResult {
  seed: number;
  method: string;
  setting: string;
  seconds: number;
  /** Why the run failed (its points are then missing); absent when it finished. */
  error?: string;
  points: FrontierPoint[];
  trace?: TracePoint[];
  winRates?: RunWinRates;
  /** {@link planDigest} of the experiment that wrote it: a re-run of the same plan reuses the result. */
  digest?: string;
}


export function poolWinRates(all: SentimentExperimentSummary['winRates']): PooledWinRate[] {
  const groups = new Map<string, { method: string; setting: string; temperature: number; rates: WinRate[] }>();
  for (const w of all) {
    for (const r of w.rates) {
      const key = JSON.stringify([w.method, w.setting, r.temperature]);
      const g = groups.get(key) ?? { method: w.method, setting: w.setting, temperature: r.temperature, rates: [] };
      g.rates.push(r);
      groups.set(key, g);
    }
  }
  return [...groups.values()].map((g) => {
    const { mean, half } = pooledInterval(g.rates.map((r) => r.winRate), g.rates.map((r) => r.winRateStderr));
    const judged = g.rates.filter((r) => r.judgeWinRate !== undefined && Number.isFinite(r.judgeWinRate));
    return {
      method: g.method,
      setting: g.setting,
      temperature: g.temperature,
      seeds: g.rates.length,
      winRate: mean,
      winRateCi: [mean - half, mean + half] as [number, number],
      ...(judged.length ? { judgeWinRate: judged.reduce((a, r) => a + (r.judgeWinRate as number), 0) / judged.length } : {}),
    };
  });
}

export function unitFile(seed: number, method: string, setting: string): string {
  return join('points', `seed-${seed}`, `${method === 'reference' ? 'reference' : runName(method, setting)}.json`);
}

const json = (v: unknown): string => `${JSON.stringify(v, null, 2)}\n`;

/** What differs between two plans, for messages ('betas, threads', 'methods'); '' when they are the same. */
export function planDifference(was: ExperimentPlan, plan: ExperimentPlan): string {
  if (json(was) === json(plan)) return '';
  const keys = Object.keys(plan.settings).filter((k) => JSON.stringify(was.settings?.[k as keyof ExperimentSettings]) !== JSON.stringify(plan.settings[k as keyof ExperimentSettings]));
  if (was.host?.threads !== plan.host.threads) keys.push('threads');
  if (!keys.length && JSON.stringify(was.units) !== JSON.stringify(plan.units)) keys.push('methods');
  return keys.join(', ') || 'format';
}

/** Refuses a folder whose experiment.json (another shard's) is not this experiment. */
export async function checkPlan(output: string, plan: ExperimentPlan): Promise<void> {
  const file = join(output, 'experiment.json');
  const old = await readFile(file, 'utf8').catch(() => undefined);
  if (old !== undefined && old !== json(plan)) {
    const was = JSON.parse(old) as ExperimentPlan;
    const differ = planDifference(was, plan);
    if (differ !== 'format') {
      throw new DpoError(`${file}: the shards in this folder run another experiment (${differ} differ); give every shard the same settings, or another --output`);
    }
  }
}

/** A digest of experiment.json as {@link writePlan} writes it: settings, thread count and units. */
export function planDigest(plan: ExperimentPlan): string {
  return createHash('sha256').update(json(plan)).digest('hex');
}

/** The plan an earlier run left in `output`, if any. */
export async function readPlan(output: string): Promise<ExperimentPlan | undefined> {
  return readJson<ExperimentPlan>(join(output, 'experiment.json')).catch(() => undefined);
}

/**
 * The units of `plan` whose result file in `output` was written by the same plan and finished
 * (a failed run is run again).
 */
export async function finishedUnits(output: string, plan: ExperimentPlan): Promise<Set<string>> {
  const digest = planDigest(plan);
  const done = new Set<string>();
  for (const u of plan.units) {
    const r = await readJson<UnitResult>(join(output, u.file)).catch(() => undefined);
    if (r && r.digest === digest && !r.error) done.add(u.file);
  }
  return done;
}

export async function writePlan(output: string, plan: ExperimentPlan): Promise<void> {
  await writeBytesAtomic(join(output, 'experiment.json'), json(plan));
}

/** Writes `data` to `output`/`file` atomically, creating its folder. */
async function writeResult(output: string, file: string, data: unknown): Promise<void> {
  await mkdir(dirname(join(output, file)), { recursive: true });
  await writeBytesAtomic(join(output, file), json(data));
}

export async function writeSeedInfo(output: string, info: SeedInfo): Promise<void> {
  await writeResult(output, join('points', `seed-${info.seed}`, 'seed.json'), info);
}

export async function writeUnitResult(output: string, r: UnitResult): Promise<void> {
  await writeResult(output, unitFile(r.seed, r.method, r.setting), r);
}

async function readJson<T>(file: string): Promise<T | undefined> {
  const text = await readFile(file, 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    throw new DpoError(`${file}: not valid JSON (${(e as Error).message})`);
  }
}

export interface MergeOptions {
  /** Wall time to record (default: the sum of the runs' seconds). */
  seconds?: number;
  host?: HostInfo;
  /** Only a shard's part may be done: say so instead of failing when units are missing. */
  partial?: boolean;
}

/**
 * frontier.jsonl, summary.json and report.html of the experiment in `folder` from the result
 * files there (see the module comment). Points come in the plan's unit order, so the same results
 * give the same bytes however many processes wrote them.
 */
export async function mergeExperiment(folder: string, o: MergeOptions = {}): Promise<SentimentExperimentSummary> {
  const output = resolve(folder);
  const plan = await readJson<ExperimentPlan>(join(output, 'experiment.json'));
  if (!plan) throw new DpoError(`${output}: no experiment.json; not the output folder of dpo experiment sentiment`);
  const results: UnitResult[] = [];
  const missing: string[] = [];
  for (const u of plan.units) {
    const r = await readJson<UnitResult>(join(output, u.file));
    if (r) results.push(r);
    else missing.push(`seed ${u.seed}: ${u.method}${u.setting ? ` ${u.setting}` : ''}`);
  }
  const seedNames = await readdir(join(output, 'points')).catch(() => [] as string[]);
  const seeds: SeedInfo[] = [];
  for (const s of plan.units.map((u) => u.seed).filter((v, i, a) => a.indexOf(v) === i)) {
    if (!seedNames.includes(`seed-${s}`)) continue;
    const info = await readJson<SeedInfo>(join(output, 'points', `seed-${s}`, 'seed.json'));
    if (info) seeds.push(info);
  }
  const points = results.flatMap((r) => r.points);
  const pooled = poolPoints(points);
  const runs: RunRecord[] = results
    .filter((r) => r.method !== 'reference')
    .map((r) => ({ method: r.method, setting: r.setting, seed: r.seed, seconds: r.seconds, ...(r.error ? { error: r.error } : {}), ...(r.trace ? { trace: r.trace } : {}) }));
  const winRates = results.filter((r) => r.winRates).map((r) => ({ method: r.method, setting: r.setting, seed: r.seed, ...(r.winRates as RunWinRates) }));
  const first = seeds[0];
  const oneSeedLayout = plan.settings.seeds === 1 && !(await readdir(join(output, 'shards')).catch(() => undefined));
  const summary: SentimentExperimentSummary = {
    output,
    report: join(output, 'report.html'),
    frontierFile: join(output, 'frontier.jsonl'),
    pairs: first?.pairs ?? 0,
    rewardModel: { dir: oneSeedLayout ? join(output, 'reward-model') : '', heldOutAccuracy: first?.rewardModelAccuracy ?? NaN, heldOutPairs: first?.heldOutPairs ?? 0 },
    seeds,
    points,
    pooled,
    runs,
    winRates,
    pooledWinRates: poolWinRates(winRates),
    missing,
    settings: plan.settings,
    host: { ...(o.host ?? hostInfo(plan.host.threads)), threads: plan.host.threads },
    reading: [],
    seconds: o.seconds ?? results.reduce((a, r) => a + r.seconds, 0),
  };
  summary.reading = readFrontier(summary);
  if (missing.length && o.partial) return summary;
  await writeFile(summary.frontierFile, points.map((p) => `${JSON.stringify(p)}\n`).join(''));
  await writeExperimentReport(summary.report, summary);
  await writeFile(join(output, 'summary.json'), json(summary));
  return summary;
}
