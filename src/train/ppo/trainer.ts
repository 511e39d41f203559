/**
 * PPOTrainer: RLHF with PPO, the DPO paper's baseline (Ziegler et al. 2019; TRL's PPOTrainer).
 *
 * Each update: sample one response per prompt from the policy (temperature 1, no top-k/top-p, so
 * the samples are draws from pi and the log-probs are exact) -> reward each response (a reward
 * model or a scorer) -> per-token log-probs and values of the policy, log-probs of the frozen
 * reference -> per-token rewards -beta (log pi - log pi_ref), plus the score on the last token ->
 * GAE -> ppoEpochs passes over shuffled minibatches, each one optimizer step of the clipped
 * surrogate + vfCoef * clipped value loss -> the adaptive controller updates beta.
 *
 * The value head is trained with the policy (shared body) and saved inside the model folder as
 * TRL's `v_head.summary.*` keys (see value-head.ts). Every random choice (prompt order, samples,
 * minibatch order) is drawn from a stream seeded by (seed, stream, update), so a checkpoint's
 * update count, prompt position and KL coefficient are the whole random state: `resume` replays
 * exactly what the uninterrupted run would have done.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { deriveSeed } from '../../data/rng.js';
import { resolveThreads } from '../../engine/host.js';
import { TrainStep, type ParamSpec } from '../../engine/train-step.js';
import { DpoError } from '../../errors.js';
import { openRewardSource } from '../../eval/rewards.js';
import { getScorer } from '../../eval/scorers.js';
import { GenerationStopped, Generator } from '../../generate/generator.js';
import { withGradientCheckpointing } from '../../models/linear.js';
import { promptsFrom } from '../../generate/prompts.js';
import { resolveEosTokenIds } from '../../generate/text.js';
import { saveCheckpoint } from '../../io/hf-folder.js';
import { resolveSaveDtype, withStoredDtype, type ModelSaveOptions } from '../../io/save-dtype.js';
import { parseShardSize } from '../../io/shards.js';
import type { JsonObject } from '../../io/json-file.js';
import type { Float32Tensor } from '../../io/safetensors.js';
import { checkpointTensors, loadPretrained, type Pretrained } from '../../models/pretrained.js';
import { findResumableCheckpoint, type TrainerState } from '../core/checkpoint.js';
import { saveCheckpointKeeping, tidyCheckpoints } from '../core/run-history.js';
import { guardedRun, resumeDigest, resumeOptions, TrainerBase, type StopOptions } from '../core/runner.js';
import { appendMetrics, MetricsAccumulator } from '../core/metrics.js';
import type { ProgressReporter } from '../../progress.js';
import { learningRateAt } from '../core/schedule.js';
import { generalizedAdvantages, meanVar, penalizedRewards, whiten } from './advantages.js';
import { parsePpoConfig, type PPOConfig, type PPOConfigInput } from './config.js';
import { buildPpoLoss, TokenScorer } from './graphs.js';
import { KlController, type KlControllerState } from './kl-controller.js';
import { PromptOrder, SEED_STREAMS } from './prompt-order.js';
import { rolloutRows, scoreRollout, type Rollout } from './rollout.js';
import { optimizeOnRollout } from './update.js';
import { initValueHead, readValueHead, saveValueHead, valueHeadShapes, VALUE_HEAD_BIAS, VALUE_HEAD_FILE, VALUE_HEAD_WEIGHT } from './value-head.js';
import { buildPolicy, savePolicy } from '../core/policy.js';
import type { Graph, Tensor } from '../../engine/graph.js';

export interface PPOTrainerOptions extends StopOptions {
  /**
   * An already loaded starting policy (skips loading `config.model`). Trained in place: when train()
   * resolves, `policy.weights` holds the trained weights (with LoRA, the base weights stay as they
   * were and the adapters are saved). Pass a copy to keep the original.
   */
  policy?: Pretrained;
  progress?: ProgressReporter;
}

export interface PPOTrainResult {
  output: string;
  /** PPO updates done. */
  steps: number;
  /** The last logged metrics. */
  metrics: Record<string, number>;
  /** The final evaluation on evalPrompts, when given. */
  evalMetrics?: Record<string, number>;
  /** True when stopped early (Ctrl-C or requestStop): a checkpoint was saved, no final model. */
  interrupted: boolean;
}

/** What a PPO checkpoint adds to the common trainer state. */
interface PpoTrainerState extends TrainerState {
  /** Optimizer steps done (AdamW's bias correction depends on it). */
  optimizerSteps: number;
  klCoef: number;
  /** The controller's whole state ('latched' keeps whether it engaged and the last KL). */
  klState?: KlControllerState;
}

export class PPOTrainer extends TrainerBase<PPOConfig> {
  constructor(config: PPOConfigInput | PPOConfig, private readonly options: PPOTrainerOptions = {}) {
    super(parsePpoConfig(config), options);
    if (this.config.scorer) getScorer(this.config.scorer);
    // Explicit, so that the resume digest holds it: PPO trains on its own samples, and another
    // thread count rounds the logits differently, flips a sampled token and diverges the run.
    this.config.threads = resolveThreads(this.config.threads);
  }

  async train(): Promise<PPOTrainResult> {
    const c = this.config;
    return guardedRun(c, 'dpo ppo', resumeOptions(this.config, RESUME_KEYS, 'ppo'), this.progress, [c.refModel, c.rewardModel], () => this.run());
  }

  private async run(): Promise<PPOTrainResult> {
    const c = this.config;
    const log = (m: string): void => this.progress.log(m);
    const pretrained = this.options.policy ?? (await loadPretrained(c.model));
    const tokenizer = pretrained.tokenizer;
    if (!tokenizer) throw new DpoError(`${pretrained.dir}: no tokenizer.json; PPO samples text and needs the model's tokenizer`);
    const model = pretrained.model;
    const unexpected = pretrained.unexpectedKeys.filter((k) => k !== VALUE_HEAD_WEIGHT && k !== VALUE_HEAD_BIAS);
    if (unexpected.length) log(`warning: ${c.model}: ignored ${unexpected.length} unexpected checkpoint keys`);

    const prompts = { texts: (await promptsFrom(c.prompts, tokenizer, 'prompts', log)).map((p) => p.text) };
    const evalPrompts = c.evalPrompts ? { texts: (await promptsFrom(c.evalPrompts, tokenizer, 'evalPrompts', log)).map((p) => p.text) } : undefined;
    const reward = await openRewardSource({ rewardModel: c.rewardModel, scorer: c.scorer, batchSize: c.batchSize, runtime: this.runtime });
    const resources: { release(): Promise<void> }[] = [reward];
    try {
      await mkdir(c.output, { recursive: true });
      // The reference: a frozen copy of the starting weights (the policy's are updated in place), or refModel.
      const ref = c.refModel ? await loadPretrained(c.refModel, { tokenizer: false }) : undefined;
      if (ref && ref.model.config.vocabSize !== model.config.vocabSize) {
        throw new DpoError(`refModel ${c.refModel}: vocabulary of ${ref.model.config.vocabSize} tokens, the policy's has ${model.config.vocabSize}: they must share a tokenizer`);
      }
      const refModel = ref?.model ?? model;
      // With LoRA the base weights stay as they are, so they are the reference as loaded (TRL:
      // the policy with its adapters disabled); without it they are trained in place: a copy.
      const refWeights = ref?.weights ?? (c.lora ? pretrained.weights : new Map([...pretrained.weights].map(([k, v]) => [k, Float32Array.from(v)])));

      const hidden = model.config.hiddenSize;
      const policy = buildPolicy(model, pretrained.weights, c.lora, c.seed);
      const head = (await readValueHead(pretrained.dir, hidden)) ?? initValueHead(hidden);
      const shapes = new Map(policy.shapes);
      const specs: ParamSpec[] = [...policy.specs];
      for (const [name, shape] of valueHeadShapes(hidden)) {
        shapes.set(name, shape);
        specs.push({ name, shape, data: head.get(name) as Float32Array, trainable: true });
      }
      // The value head rides along the transforms: LoRA rewrites only the model's own weights.
      const trainWeights = policy.trainTransform ?? ((_g: Graph, p: Record<string, Tensor>) => p);
      const step = await TrainStep.create(
        specs,
        (g, params) =>
          buildPpoLoss(g, model, withGradientCheckpointing(trainWeights(g, params), c.gradientCheckpointing), { cliprange: c.cliprange, cliprangeValue: c.cliprangeValue, vfCoef: c.vfCoef }),
        { name: c.optimizer, weightDecay: c.weightDecay, maxGradNorm: c.maxGradNorm },
        this.runtime,
      );
      resources.push(step);
      const generator = await Generator.create(model, { inputs: specs, transform: policy.transform, runtime: this.runtime });
      resources.push(generator);
      const policyScorer = await TokenScorer.create(model, shapes, true, this.runtime, policy.transform);
      resources.push(policyScorer);
      const refShapes = new Map<string, readonly number[]>(refModel.parameters().map((p) => [p.name, p.shape]));
      const refScorer = await TokenScorer.create(refModel, refShapes, false, this.runtime);
      resources.push(refScorer);

      const params = step.parameters();
      const eos = resolveEosTokenIds(model, tokenizer, pretrained.generationConfig);
      const miniBatch = c.miniBatchSize ?? c.batchSize;
      // undefined: a stop request (SIGINT/SIGTERM) ended the sampling within a decoding step.
      const sample = async (texts: readonly string[], seed: number): Promise<Rollout | undefined> => {
        const r = await generator.generateText(params, tokenizer, texts, {
          stopRequested: () => this.stop.stopped,
          maxNewTokens: c.maxNewTokens,
          doSample: true,
          temperature: 1,
          topK: 0,
          topP: 1,
          seed,
          eosTokenIds: eos,
          batchSize: c.batchSize,
          maxPromptTokens: c.maxPromptLength,
        }).catch((e: unknown) => {
          if (e instanceof GenerationStopped) return undefined;
          throw e;
        });
        if (!r) return undefined;
        const { rows, offsets } = rolloutRows(r.promptTokenIds, r.tokenIds.map((s) => s[0]));
        return { prompts: [...texts], completions: r.completions.map((s) => s[0]), finishReasons: r.finishReasons.map((s) => s[0]), rows, offsets };
      };

      const order = new PromptOrder(prompts.texts.length, c.seed);
      const kl = new KlController(c.initKlCoef, c.targetKl, c.klHorizon, c.klControl);
      const totalSteps = c.maxSteps ?? Math.max(1, Math.ceil((c.numEpochs * prompts.texts.length) / c.batchSize));
      let done = 0;
      let optimizerSteps = 0;
      const digest = this.digest();
      const metricsFile = join(c.output, 'metrics.jsonl');
      await tidyCheckpoints(c.output, undefined, log, typeof c.resume === 'string' ? undefined : c.saveTotalLimit);
      if (c.resume) {
        const expect = { shapes, optimizerSlots: Object.keys(step.optimizerState().state.values().next().value ?? {}) };
        const { dir, contents } = await findResumableCheckpoint(c.output, typeof c.resume === 'string' ? c.resume : undefined, log, expect);
        // guardedRun checked the digest; the step budget may change on resume (it is not part of it).
        const state = contents.state as PpoTrainerState;
        step.restore(contents.weights, contents.optimizer, state.optimizerSteps);
        order.restore(state.batcher);
        kl.restore({ ...state.klState, value: state.klCoef });
        done = state.step;
        optimizerSteps = state.optimizerSteps;
        await tidyCheckpoints(c.output, done, log, c.saveTotalLimit);
        log(`resumed from ${dir} at update ${done}`);
      } else {
        await writeFile(metricsFile, '');
      }
      let savedAt = -1;
      const saveCheckpoint = async (): Promise<void> => {
        savedAt = done;
        const state: PpoTrainerState = { step: done, batcher: order.state(), totalSteps, configDigest: digest, optimizerSteps, klCoef: kl.value, klState: kl.state() };
        await saveCheckpointKeeping(c.output, { state, weights: params, shapes, optimizer: step.optimizerState().state }, c.saveTotalLimit, log);
      };

      const evaluate = async (): Promise<Record<string, number> | undefined> => {
        const texts = evalPrompts?.texts as string[];
        const r = await sample(texts, deriveSeed(c.seed, SEED_STREAMS.eval));
        if (!r) return undefined;
        const scores = await reward.fn(r.prompts, r.completions, 'eval');
        const pol = await scoreRollout(policyScorer, params, r, tokenizer.padTokenId, miniBatch);
        const refs = await scoreRollout(refScorer, refWeights, r, tokenizer.padTokenId, miniBatch);
        const seqKl = sequenceSums(Float64Array.from(pol.logps, (v, i) => v - refs.logps[i]), r.offsets);
        return { 'eval_objective/scores': meanVar(scores).mean, 'eval_objective/kl': meanVar(seqKl).mean };
      };

      const stopping = (): boolean => this.stop.stopped;
      const acc = new MetricsAccumulator();
      let lastMetrics: Record<string, number> = {};
      let evalMetrics: Record<string, number> | undefined;
      let windowStart = Date.now();
      let episodes = 0;
      try {
        if (evalPrompts && c.evalOnStart && done === 0) {
          evalMetrics = await evaluate();
          if (evalMetrics) await appendMetrics(metricsFile, { step: 0, ...evalMetrics });
        }
        this.progress.start('ppo', totalSteps);
        this.progress.update(done);
        while (done < totalSteps && !stopping()) {
          const lr = learningRateAt(c.lrScheduler, c.learningRate, done, totalSteps, c.warmupSteps);
          const orderBefore = order.state();
          const texts = order.next(c.batchSize).map((i) => prompts.texts[i]);
          const rollout = await sample(texts, deriveSeed(c.seed, SEED_STREAMS.rollout, done));
          if (!rollout) {
            // Stopped mid-rollout: this update is dropped (its prompts come again on --resume).
            order.restore(orderBefore);
            log(
              done > 0
                ? `stopped during the rollout of update ${done + 1}: ${savedAt === done ? 'kept' : 'saving'} checkpoint-${done}, the last completed update (--resume continues from it)`
                : 'stopped during the rollout of the first update; no update was completed, nothing to save',
            );
            break;
          }
          const scores = await reward.fn(rollout.prompts, rollout.completions, 'rollout');
          const pol = await scoreRollout(policyScorer, params, rollout, tokenizer.padTokenId, miniBatch);
          const refs = await scoreRollout(refScorer, refWeights, rollout, tokenizer.padTokenId, miniBatch);
          const values = pol.values as Float64Array;
          const pen = penalizedRewards(pol.logps, refs.logps, scores, rollout.offsets, kl.value);
          const rewards = c.whitenRewards ? whiten(pen.rewards, false) : pen.rewards;
          const { advantages, returns } = generalizedAdvantages(rewards, values, rollout.offsets, c.gamma, c.lam);
          const tokenInputs = { old_logps: pol.logps, old_values: values, advantages: whiten(advantages), returns };

          const n = rollout.rows.length;
          optimizerSteps += await optimizeOnRollout({
            step,
            rows: rollout.rows,
            offsets: rollout.offsets,
            tokenInputs,
            padTokenId: tokenizer.padTokenId,
            epochs: c.ppoEpochs,
            miniBatch,
            accumulation: c.gradientAccumulationSteps,
            lr,
            seed: (epoch) => deriveSeed(c.seed, SEED_STREAMS.minibatches, done, epoch),
            metrics: acc,
            update: done + 1,
          });
          const seqKl = sequenceSums(pen.kl, rollout.offsets);
          const meanKl = meanVar(seqKl).mean;
          const meanScore = meanVar(scores).mean;
          const nonScore = meanVar(pen.nonScoreRewards).mean;
          acc.add('objective/kl', meanKl);
          acc.add('policy/entropy_avg', meanVar(pol.entropy as Float64Array).mean);
          acc.add('objective/entropy', -meanVar(sequenceSums(pol.logps, rollout.offsets)).mean);
          acc.add('objective/non_score_reward', nonScore);
          acc.add('objective/rlhf_reward', meanScore + nonScore);
          acc.add('objective/scores', meanScore);
          acc.add('objective/kl_coef', kl.value);
          acc.add('val/num_eos_tokens', rollout.finishReasons.filter((f) => f === 'eos').length);
          acc.add('val/error', meanSquaredError(values, returns));
          acc.add('returns/mean', meanVar(returns).mean);
          acc.add('response_length', rollout.offsets[n] / n);
          kl.update(meanKl, n);
          done++;
          episodes += n;

          if (done % c.loggingSteps === 0 || done === totalSteps) {
            const m = acc.flush();
            const ratioVar = Math.max(0, m.ratio_sq - m['val/ratio'] ** 2);
            delete m.ratio_sq;
            const seconds = (Date.now() - windowStart) / 1000;
            lastMetrics = { ...m, 'val/ratio_var': ratioVar, learning_rate: lr, episode: done * c.batchSize, episodes_per_second: episodes / Math.max(seconds, 1e-9) };
            await appendMetrics(metricsFile, { step: done, ...lastMetrics });
            windowStart = Date.now();
            episodes = 0;
          }
          if (evalPrompts && c.evalSteps && done % c.evalSteps === 0 && done < totalSteps && !stopping()) {
            const m = await evaluate();
            if (m) await appendMetrics(metricsFile, { step: done, ...m });
            evalMetrics = m ?? evalMetrics;
          }
          this.progress.update(done, { score: lastMetrics['objective/scores'] ?? meanScore, kl: lastMetrics['objective/kl'] ?? meanKl, beta: kl.value });
          // The last update too, so that a finished run can be extended with --resume --max-steps.
          if ((c.saveSteps && (done % c.saveSteps === 0 || done === totalSteps)) || stopping()) await saveCheckpoint();
        }
        this.progress.stop();
        if (!stopping() && evalPrompts) {
          const m = await evaluate();
          if (m) await appendMetrics(metricsFile, { step: done, ...m });
          evalMetrics = m ?? evalMetrics;
        }
        const interrupted = stopping();
        // A stop during a rollout or an evaluation: the checkpoint of the last completed update.
        if (interrupted && done > 0 && savedAt !== done) await saveCheckpoint();
        if (!interrupted) {
          if (policy.lora) {
            await savePolicy(c.output, c.model, pretrained, policy, params, c);
            await saveValueHead(c.output, params, hidden);
            log(`saved the LoRA adapter and its value head (${VALUE_HEAD_FILE}) to ${c.output}`);
          } else {
            await savePolicyWithValueHead(c.output, pretrained, params, c);
            log(`saved the policy and its value head to ${c.output}`);
          }
        }
        return { output: c.output, steps: done, metrics: lastMetrics, evalMetrics, interrupted };
      } finally {
        this.progress.stop();
      }
    } finally {
      for (const r of resources.reverse()) await r.release();
    }
  }

  /** Options a resumed run must share with the run that wrote the checkpoint. */
  private digest(): string {
    return resumeDigest(this.config, RESUME_KEYS, 'ppo');
  }
}

/** What defines a PPO run's trajectory (the step budget and reporting may change on resume). */
const RESUME_KEYS = [
  'model', 'prompts', 'rewardModel', 'scorer', 'refModel', 'batchSize', 'miniBatchSize', 'ppoEpochs', 'optimizer', 'seed', 'maxNewTokens', 'maxPromptLength',
  'initKlCoef', 'targetKl', 'klHorizon', 'klControl', 'gamma', 'lam', 'cliprange', 'cliprangeValue', 'vfCoef', 'whitenRewards', 'threads', 'lora',
  'gradientAccumulationSteps',
] as const satisfies readonly (keyof PPOConfig)[];

/** [N] sums of per-token values over each sequence. */
function sequenceSums(values: ArrayLike<number>, offsets: Int32Array): Float64Array {
  const out = new Float64Array(offsets.length - 1);
  for (let s = 0; s < out.length; s++) for (let t = offsets[s]; t < offsets[s + 1]; t++) out[s] += values[t];
  return out;
}

function meanSquaredError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i] - b[i]) ** 2;
  return s / a.length;
}

/**
 * The policy in Hugging Face layout with the value head's two tensors in the same
 * model.safetensors, under TRL's names (see value-head.ts).
 */
export async function savePolicyWithValueHead(output: string, pretrained: Pretrained, params: ReadonlyMap<string, Float32Array>, save: ModelSaveOptions = {}): Promise<void> {
  const { model } = pretrained;
  const modelWeights = new Map(model.parameters().map((p) => [p.name, params.get(p.name) as Float32Array]));
  const tensors: Map<string, Float32Tensor> = checkpointTensors(model, modelWeights);
  for (const [name, shape] of valueHeadShapes(model.config.hiddenSize)) tensors.set(name, { data: params.get(name) as Float32Array, shape: [...shape] });
  // --save-dtype as every other command: auto keeps the dtype the model was loaded in.
  const dtype = resolveSaveDtype(save.saveDtype, pretrained.dtype);
  const config = withStoredDtype(model.config.raw as JsonObject, dtype);
  const maxShardSize = save.maxShardSize === undefined ? undefined : parseShardSize(save.maxShardSize);
  await saveCheckpoint(output, { config, tensors, dtype, maxShardSize, tokenizerDir: pretrained.dir, generationConfig: pretrained.generationConfig });
}
