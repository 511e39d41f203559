/**
 * RewardTrainer: fits a reward model r(x, y) (a causal LM body with a scalar head on the last
 * non-padding token, see reward-model.ts) to preference data with the Bradley-Terry loss
 * -log sigmoid(r(x, y_w) - r(x, y_l)), with TRL RewardTrainer's options and metric names.
 *
 * Data: every preference format `dpo train` reads. Rankings of K > 2 completions (best first)
 * are trained on all K(K-1)/2 ordered pairs of the row, the row's loss being the mean over its
 * pairs (InstructGPT's reward-model recipe: each comparison counts, the row counts once); K = 2
 * is the ordinary pairwise loss.
 *
 * After training the mean raw reward over every completion of the training rows is stored as
 * the model's `reward_offset`, so normalised rewards have mean 0 over the training prompts (the
 * DPO paper's normalisation); see reward-model.ts for why the offset lives in config.json.
 */
import { join } from 'node:path';
import { collatePreferences, type PreferenceBatch } from '../../data/collate.js';
import type { TokenizedPreference } from '../../data/tokenize.js';
import * as op from '../../engine/ops.js';
import { float32Params, type ParamData, type ParamSpec } from '../../engine/train-step.js';
import { DpoError } from '../../errors.js';
import type { FloatOutputDtype } from '../../io/dtypes.js';
import { resolveModel } from '../../io/hub.js';
import { readJsonObject } from '../../io/json-file.js';
import { resolveSaveDtype } from '../../io/save-dtype.js';
import { parseShardSize } from '../../io/shards.js';
import type { TextTokenizer } from '../../io/tokenizer-types.js';
import { mergeLora } from '../../models/lora.js';
import { loadModelOrAdapter } from '../../models/load-model.js';
import { fitToContext } from '../../models/context-limit.js';
import type { CausalLM } from '../../models/types.js';
import { parseRewardConfig, type RewardConfig, type RewardConfigInput } from './config.js';
import { bradleyTerryLoss, rankingPairs } from './loss.js';
import { preparePreferenceSplit } from '../core/prepare-split.js';
import type { EvalGraph } from '../core/loop.js';
import { buildPolicy } from '../core/policy.js';
import type { ProgressReporter } from '../../progress.js';
import { guardedRun, requireTokenizer, resumeOptions, runTrainer, TrainerBase, trainingDropout, type StopOptions, type TrainerResult } from '../core/runner.js';
import {
  bodyParameterNames,
  declareRewardInputs,
  initScoreHead,
  isRewardModelConfig,
  loadRewardModel,
  rewardFeeds,
  rewardScores,
  saveRewardModel,
  SCORE_WEIGHT,
} from '../../scoring/reward-model.js';
import { dataSourceName, type DataSource } from '../../data/read.js';

/** Options a resumed run must share with the run that wrote the checkpoint. */
const REWARD_RESUME_KEYS = [
  'model', 'data', 'batchSize', 'gradientAccumulationSteps', 'optimizer', 'seed', 'lora', 'maxLength', 'centerRewardsCoefficient',
] as const satisfies readonly (keyof RewardConfig)[];

export interface RewardTrainerOptions extends StopOptions {
  progress?: ProgressReporter;
}

export interface RewardTrainResult extends TrainerResult {
  /** The stored reward_offset (mean raw reward over the training completions); undefined when interrupted. */
  rewardOffset?: number;
}

/** accuracy / margin / mean_reward sums of one batch's rewards. */
class RewardMetrics {
  private pairs = 0;
  private correct = 0;
  private margin = 0;
  private rewardSum = 0;
  private sequences = 0;
  private lossSum = 0;
  private rows = 0;

  add(rewards: ArrayLike<number>, K: number, loss?: number): void {
    const B = rewards.length / K;
    for (let i = 0; i < B; i++) {
      for (const [a, b] of rankingPairs(K)) {
        const d = rewards[a * B + i] - rewards[b * B + i];
        this.pairs++;
        if (d > 0) this.correct++;
        this.margin += d;
      }
    }
    for (let n = 0; n < rewards.length; n++) this.rewardSum += rewards[n];
    this.sequences += rewards.length;
    if (loss !== undefined) {
      this.lossSum += loss * B;
      this.rows += B;
    }
  }

  flush(prefix = ''): Record<string, number> {
    const out: Record<string, number> = {};
    if (this.rows) out[`${prefix}loss`] = this.lossSum / this.rows;
    out[`${prefix}accuracy`] = this.correct / Math.max(this.pairs, 1);
    out[`${prefix}margin`] = this.margin / Math.max(this.pairs, 1);
    out[`${prefix}mean_reward`] = this.rewardSum / Math.max(this.sequences, 1);
    this.pairs = this.correct = this.margin = this.rewardSum = this.sequences = this.lossSum = this.rows = 0;
    return out;
  }
}

export class RewardTrainer extends TrainerBase<RewardConfig> {
  constructor(config: RewardConfigInput | RewardConfig, options: RewardTrainerOptions = {}) {
    super(parseRewardConfig(config), options);
  }

  /** Trains; --output is checked and locked before any work. */
  async train(): Promise<RewardTrainResult> {
    return guardedRun(this.config, 'dpo reward train', resumeOptions(this.config, REWARD_RESUME_KEYS, 'reward'), this.progress, [], (digest) => this.trainLocked(digest));
  }

  private async trainLocked(digest: string): Promise<RewardTrainResult> {
    const c = this.config;
    const log = (m: string): void => this.progress.log(m);
    const start = await this.loadStart();
    const { model, tokenizer } = start;
    const maxLength = fitToContext(c.maxLength, model);
    const padTokenId = tokenizer.padTokenId;
    const body = new Set(bodyParameterNames(model));

    // Trainable parameters: the body (or LoRA adapters on it) and the head.
    const policy = buildPolicy(model, start.weights, c.lora, c.seed);
    const head: ParamSpec = { name: SCORE_WEIGHT, shape: [1, model.config.hiddenSize], data: start.head, trainable: true };
    const modelParams = new Set(model.parameters().map((p) => p.name));
    const specs: ParamSpec[] = [...policy.specs.filter((s) => body.has(s.name) || !modelParams.has(s.name)), head];
    const shapes = new Map(specs.map((s) => [s.name, s.shape] as const));
    const trainable = specs.filter((s) => s.trainable !== false).map((s) => s.name);

    const train = await this.prepare(c.data, tokenizer, 'train', maxLength);
    const evalRows = c.evalData ? await this.prepare(c.evalData, tokenizer, 'eval', maxLength) : undefined;
    const K = train[0].completionIds.length;
    if (evalRows && evalRows[0].completionIds.length !== K) {
      throw new DpoError(`${dataSourceName(c.evalData ?? '')}: rows have ${evalRows[0].completionIds.length} completions, the training rows ${K}`);
    }
    const dropout = trainingDropout(c);
    const metrics = new RewardMetrics();
    let rewardOffset: number | undefined;
    const result = await runTrainer({
      config: c,
      progress: this.progress,
      params: { specs, trainable, shapes, transform: policy.transform, trainTransform: policy.trainTransform },
      loss: (g, weights) => {
        const rewards = rewardScores(model, weights, declareRewardInputs(g), dropout);
        return { loss: bradleyTerryLoss(rewards, K, c.centerRewardsCoefficient ?? 0), outputs: { rewards: op.stopGradient(rewards) } };
      },
      rows: train,
      padTokenId,
      digest,
      stopRequested: () => this.stop.stopped,
      hooks: ({ evalGraph }) => ({
        feeds: (batches) => batches.map((b) => rewardFeeds(b, padTokenId)),
        record: (_batch, o) => metrics.add(o.rewards.data as Float32Array, K),
        flush: () => metrics.flush(),
        evaluate: evalRows
          ? async (params) => {
              const m = new RewardMetrics();
              await this.scoreRows(await evalGraph(), evalRows, params, padTokenId, 'eval', (r, loss) => m.add(r, K, loss));
              return m.flush('eval_');
            }
          : undefined,
        saveFinal: async (params) => {
          // Mean raw reward over every completion of the training rows -> reward_offset.
          let sum = 0;
          let n = 0;
          await this.scoreRows(await evalGraph(), train, params, padTokenId, 'reward offset', (r) => {
            for (const v of r) sum += v;
            n += r.length;
          });
          rewardOffset = sum / n;
          let weights = new Map([...float32Params(params)].filter(([k]) => body.has(k) || k === SCORE_WEIGHT));
          if (policy.lora) {
            const adapters = new Map(policy.trainable.map((k) => [k, params.get(k) as Float32Array]));
            weights = mergeLora(model, weights, adapters, policy.lora);
          }
          await saveRewardModel(c.output, {
            model,
            weights,
            offset: rewardOffset,
            padTokenId,
            tokenizerDir: start.dir,
            dtype: resolveSaveDtype(c.saveDtype, start.dtype),
            maxShardSize: parseShardSize(c.maxShardSize),
          });
          log(`saved the reward model to ${c.output} (reward_offset ${rewardOffset.toPrecision(6)})`);
        },
        progressInfo: (m, loss) => ({ loss: m.loss ?? loss, acc: m.accuracy ?? 0, margin: m.margin ?? 0 }),
      }),
    });
    return { ...result, rewardOffset };
  }

  /** The starting point: a causal LM (new head, N(0, initializer_range^2)) or a reward model (its head). */
  private async loadStart(): Promise<{
    model: CausalLM;
    weights: Map<string, Float32Array>;
    head: Float32Array;
    tokenizer: TextTokenizer;
    dir: string;
    dtype: FloatOutputDtype;
  }> {
    const c = this.config;
    const dir = (await resolveModel(c.model)).dir;
    const config = await readJsonObject(join(dir, 'config.json'), true);
    if (config && isRewardModelConfig(config)) {
      const rm = await loadRewardModel(dir);
      const tokenizer = requireTokenizer(rm);
      const head = rm.weights.get(SCORE_WEIGHT) as Float32Array;
      rm.weights.delete(SCORE_WEIGHT);
      return { model: rm.model, weights: rm.weights, head, tokenizer, dir: rm.dir, dtype: rm.dtype };
    }
    const p = await loadModelOrAdapter(dir);
    const tokenizer = requireTokenizer(p);
    const range = typeof p.config.initializer_range === 'number' ? p.config.initializer_range : 0.02;
    return { model: p.model, weights: p.weights, head: initScoreHead(p.model.config.hiddenSize, range, c.seed), tokenizer, dir: p.dir, dtype: p.dtype };
  }

  private prepare(path: DataSource, tokenizer: TextTokenizer, split: string, maxLength: number): Promise<TokenizedPreference[]> {
    return preparePreferenceSplit(path, tokenizer, { ...this.config, maxLength }, this.progress, split);
  }

  /** Raw rewards [K*B] (and the batch's loss) of `rows`, in order, batch by batch. */
  private async scoreRows(
    graph: EvalGraph,
    rows: readonly TokenizedPreference[],
    params: ReadonlyMap<string, ParamData>,
    padTokenId: number,
    label: string,
    onBatch: (rewards: Float32Array, loss: number, batch: PreferenceBatch) => void,
  ): Promise<void> {
    const bs = this.config.batchSize;
    this.progress.start(label, rows.length);
    for (let s = 0; s < rows.length; s += bs) {
      const batch = collatePreferences(rows.slice(s, s + bs), { padTokenId, padToMultipleOf: this.config.padToMultipleOf });
      const out = await graph.run(rewardFeeds(batch, padTokenId), params);
      onBatch(out.rewards.data as Float32Array, Number(out.loss.data[0]), batch);
      this.progress.update(Math.min(s + bs, rows.length));
    }
    this.progress.stop();
  }
}
