/**
 * `dpo ppo`: RLHF with PPO (the DPO paper's baseline): flags and/or a config file -> PPOConfig ->
 * PPOTrainer. `--config run.yaml|json` holds the same keys, flags override it.
 */
import type { Command } from 'commander';
import { listScorers } from '../eval/scorers.js';
import { parsePpoConfig, PPOConfigSchema } from '../train/ppo/config.js';
import { printJson, type CliContext } from './context.js';
import { addOptions, loadConfigFile, mergeConfig, validateConfig, valuesFromFlags, type OptionSpec } from './options.js';

export const PPO_OPTIONS: readonly OptionSpec[] = [
  { key: 'model', kind: 'string', arg: 'path', description: 'starting policy: a Hugging Face model folder or hub id (a PPO output continues with its value head)' },
  { key: 'prompts', kind: 'string', arg: 'path', description: 'prompts to roll out from: {"prompt": ...} rows in .jsonl/.json/.parquet, or a folder of them' },
  { key: 'output', kind: 'string', arg: 'dir', description: 'output folder: final policy with its value head, metrics.jsonl, checkpoints' },
  { key: 'rewardModel', kind: 'string', arg: 'path', description: 'reward model folder (`dpo reward train` output); rewards are raw minus its reward_offset' },
  { key: 'scorer', kind: 'string', arg: 'name', description: `built-in reward instead of a reward model (${listScorers().map((s) => s.name).join(', ')}); 'sentiment' is the paper's PPO-GT` },
  { key: 'refModel', kind: 'string', arg: 'path', description: 'frozen reference of the KL penalty (default: the starting policy)' },
  { key: 'evalPrompts', kind: 'string', arg: 'path', description: 'held-out prompts: eval_objective/scores and eval_objective/kl every --eval-steps and at the end' },
  { key: 'evalOnStart', kind: 'boolean', negatable: true, description: 'also evaluate on --eval-prompts before the first update (step 0)' },
  { key: 'batchSize', kind: 'integer', defaultText: '16', description: 'episodes (prompts, one sampled response each) per rollout' },
  { key: 'miniBatchSize', kind: 'integer', description: 'episodes per optimizer step (default: --batch-size)' },
  { key: 'ppoEpochs', kind: 'integer', defaultText: '4', description: 'passes over each rollout, in shuffled minibatches' },
  { key: 'maxSteps', kind: 'integer', description: 'PPO updates (rollout + its optimizer steps); overrides --num-epochs' },
  { key: 'numEpochs', kind: 'number', defaultText: '1', description: 'passes over the prompts (may be fractional)' },
  { key: 'maxNewTokens', kind: 'integer', defaultText: '32', description: 'response length limit (sampling stops earlier at EOS)' },
  { key: 'maxPromptLength', kind: 'integer', description: 'keep only the last n prompt tokens' },
  { key: 'learningRate', kind: 'number', arg: 'lr', defaultText: '1.41e-5', description: 'peak learning rate (TRL PPOConfig)' },
  { key: 'initKlCoef', kind: 'number', arg: 'beta', defaultText: '0.2', description: 'initial coefficient of the per-token KL penalty -beta (log pi - log pi_ref)' },
  { key: 'targetKl', kind: 'number', arg: 'nats', description: 'adaptive KL controller: steer the sequence-level KL to this target (default: beta fixed)' },
  { key: 'klHorizon', kind: 'number', arg: 'episodes', defaultText: '10000', description: 'adaptive controller horizon: beta *= 1 + clip(KL/target - 1, ±0.2) * episodes / horizon' },
  { key: 'gamma', kind: 'number', defaultText: '1', description: 'discount factor' },
  { key: 'lam', kind: 'number', arg: 'lambda', defaultText: '0.95', description: 'GAE lambda' },
  { key: 'cliprange', kind: 'number', arg: 'eps', defaultText: '0.2', description: 'clip range of the probability ratio (surrogate objective)' },
  { key: 'cliprangeValue', kind: 'number', arg: 'eps', defaultText: '0.2', description: 'clip range of the value predictions around the rollout values' },
  { key: 'vfCoef', kind: 'number', arg: 'c', defaultText: '0.1', description: 'weight of the value loss' },
  { key: 'whitenRewards', kind: 'boolean', negatable: true, description: 'whiten the per-token rewards (scale only) before GAE; advantages are always whitened' },
  { key: 'optimizer', kind: 'string', arg: 'name', choices: ['adamw', 'rmsprop', 'sgd'], defaultText: 'adamw', description: 'optimizer' },
  { key: 'weightDecay', kind: 'number', defaultText: '0', description: 'decoupled weight decay' },
  { key: 'lrScheduler', kind: 'string', arg: 'name', choices: ['constant', 'linear', 'cosine'], defaultText: 'linear', description: 'learning-rate schedule over the updates, after warm-up' },
  { key: 'warmupSteps', kind: 'integer', defaultText: '0', description: 'linear warm-up updates' },
  { key: 'maxGradNorm', kind: 'number', defaultText: '1', description: 'clip the global gradient norm (0 disables)' },
  { key: 'seed', kind: 'integer', defaultText: '42', description: 'seed of the prompt order, the samples and the minibatch order' },
  { key: 'evalSteps', kind: 'integer', description: 'evaluate on --eval-prompts every n updates (and always at the end)' },
  { key: 'saveSteps', kind: 'integer', description: 'save a checkpoint every n updates' },
  { key: 'resume', kind: 'optionalString', arg: 'checkpoint', description: 'continue from the newest checkpoint in --output, or from the given one' },
  { key: 'loggingSteps', kind: 'integer', defaultText: '1', description: 'write metrics every n updates' },
  { key: 'threads', kind: 'integer', description: 'ONNX Runtime intra-op threads (default: all cores)' },
  { key: 'device', kind: 'string', arg: 'name', choices: ['cpu', 'cuda'], defaultText: 'cpu', description: 'execution provider' },
];

const EXAMPLES = `
Examples:
  # PPO-GT: the ground-truth sentiment scorer as the reward (the DPO paper's PPO-GT)
  $ dpo ppo --model ./sft-model --prompts prompts.jsonl --scorer sentiment --output runs/ppo-gt \\
      --learning-rate 1e-5 --batch-size 16 --max-steps 200

  # RLHF: a reward model from \`dpo reward train\`, adaptive KL controller towards KL = 6 nats
  $ dpo ppo --model ./sft-model --prompts prompts.jsonl --reward-model runs/rm --output runs/ppo \\
      --init-kl-coef 0.2 --target-kl 6 --eval-prompts heldout.jsonl --eval-steps 20

  # Continue an interrupted run from its newest checkpoint
  $ dpo ppo --config ppo.yaml --resume

Each update samples one response per prompt from the policy (temperature 1, no top-k/top-p),
rewards it, adds the per-token KL penalty against the frozen reference, estimates advantages with
GAE, and runs --ppo-epochs passes of clipped-surrogate + clipped-value minibatch steps. The value
head is saved inside the output's model.safetensors as v_head.summary.weight/bias (TRL's
AutoModelForCausalLMWithValueHead layout; transformers ignores the two keys). Metrics go to
<output>/metrics.jsonl with TRL's names (objective/kl, objective/scores, objective/rlhf_reward,
policy/clipfrac_avg, policy/approxkl_avg, loss/policy_avg, loss/value_avg, val/clipfrac_avg, ...).`;

export function register(program: Command, ctx: CliContext): void {
  const cmd = program
    .command('ppo')
    .description('RLHF with PPO: sample from the policy, reward, KL penalty, GAE, clipped updates (the DPO paper baseline)')
    .option('--config <file>', 'ppo.yaml or ppo.json with the same keys as the flags (flags override it)');
  addOptions(cmd, PPO_OPTIONS);
  cmd
    .option('--print-config', 'print the resolved configuration as JSON and exit')
    .addHelpText('after', EXAMPLES)
    .action(async (opts: Record<string, unknown>) => {
      const file = typeof opts.config === 'string' ? opts.config : undefined;
      const fromFlags = valuesFromFlags(opts, PPO_OPTIONS);
      const merged = mergeConfig(file ? await loadConfigFile(file) : {}, fromFlags);
      const config = parsePpoConfig(validateConfig(PPOConfigSchema, merged, fromFlags, PPO_OPTIONS, file), file ?? 'ppo');
      if (opts.printConfig) {
        printJson(ctx, config);
        return;
      }
      // Loaded on use, so that --help and option errors answer without loading ONNX Runtime.
      const { PPOTrainer } = await import('../train/ppo/trainer.js');
      const r = await new PPOTrainer(config, { progress: ctx.progress() }).train();
      printJson(ctx, { output: r.output, steps: r.steps, interrupted: r.interrupted, metrics: r.metrics, ...(r.evalMetrics ? { eval_metrics: r.evalMetrics } : {}) });
      ctx.exitCode = r.interrupted ? 130 : 0;
    });
}
