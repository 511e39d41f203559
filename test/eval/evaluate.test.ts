/**
 * evaluateGenerations and `dpo evaluate` on tiny random GPT-2s with GPT-2's real tokenizer: KL of a
 * model against itself is exactly 0 and positive against a different one, rewards under a reward
 * model (offset applied) and built-in scorers, win rates against a baseline file / model, the LLM
 * judge end to end (Bearer key from the named variable, cache), and CLI validation.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../cli/run-cli.js';
import { evaluateGenerations, type EvaluationReport } from '../../src/eval/evaluate.js';
import { getScorer, listScorers, registerScorer, sentimentScore, wordCount } from '../../src/eval/scorers.js';
import { loadPretrained, savePretrained } from '../../src/models/pretrained.js';
import { initScoreHead, saveRewardModel, SCORE_WEIGHT, bodyParameterNames } from '../../src/scoring/reward-model.js';
import { makeTinyGpt2, tempDir } from '../train/helpers.js';

const run = runCli;

const PROMPTS = ['The movie was', 'I think that', 'Once upon a time'];
const FAST = { numSamples: 2, maxNewTokens: 6, batchSize: 4, runtime: { threads: 1 } } as const;

describe('scorers', () => {
  it('sentiment: VADER compound, positive > negative; length counts words; registry by name', async () => {
    const pos = sentimentScore('I loved this movie, it was wonderful and the acting was great!');
    const neg = sentimentScore('An awful, boring film. I hated every terrible minute.');
    expect(pos).toBeGreaterThan(0.5);
    expect(neg).toBeLessThan(-0.5);
    expect(sentimentScore('The movie was')).toBe(0);
    expect(await getScorer('sentiment').score('ignored prompt: terrible', ' a delightful surprise')).toBeGreaterThan(0);
    expect(wordCount('  two  words\n')).toBe(2);
    expect(wordCount('   ')).toBe(0);
    expect(await getScorer('length').score('p', ' one two three')).toBe(3);
    expect(listScorers().map((s) => s.name)).toEqual(expect.arrayContaining(['sentiment', 'length']));
    expect(() => getScorer('nope')).toThrow(/unknown scorer 'nope' \(known: .*sentiment.*length/);
    registerScorer('has-the', (_p, c) => (c.includes('the') ? 1 : 0), 'test');
    expect(getScorer('has-the').score('', 'the end')).toBe(1);
  });
});

describe('evaluateGenerations and dpo evaluate', () => {
  let dir: string;
  let ref: string;
  let sharp: string;
  let prompts: string;
  let rm0: string;
  let rm1: string;
  let selfReport: EvaluationReport;

  beforeAll(async () => {
    dir = tempDir('dpo-ts-evaluate-');
    ref = await makeTinyGpt2(join(dir, 'ref'), { seed: 1 });
    // A different, much sharper model: its samples are far more likely under itself than under ref.
    const other = await makeTinyGpt2(join(dir, 'other'), { seed: 2 });
    const pre = await loadPretrained(other);
    const wte = pre.weights.get('transformer.wte.weight') as Float32Array;
    for (let i = 0; i < wte.length; i++) wte[i] *= 100;
    sharp = join(dir, 'sharp');
    await savePretrained(sharp, { model: pre.model, weights: pre.weights, tokenizerDir: other });
    prompts = join(dir, 'prompts.jsonl');
    writeFileSync(prompts, PROMPTS.map((p) => JSON.stringify({ prompt: p })).join('\n') + '\n');
    // Reward models: ref's body + a random head, with reward_offset 0 and 1.5.
    const base = await loadPretrained(ref);
    const body = new Set(bodyParameterNames(base.model));
    const weights = new Map([...base.weights].filter(([n]) => body.has(n)));
    weights.set(SCORE_WEIGHT, initScoreHead(base.model.config.hiddenSize, 1, 7));
    rm0 = join(dir, 'rm0');
    rm1 = join(dir, 'rm1');
    await saveRewardModel(rm0, { model: base.model, weights, offset: 0, padTokenId: 50256, tokenizerDir: ref });
    await saveRewardModel(rm1, { model: base.model, weights, offset: 1.5, padTokenId: 50256, tokenizerDir: ref });
    selfReport = await evaluateGenerations({ model: ref, refModel: ref, prompts, ...FAST, rewardModel: rm0, baseline: ref, perSample: true });
  });

  it('KL of a model against itself is exactly 0; samples scored as drawn', () => {
    const r = selfReport;
    expect(r.prompts).toBe(3);
    expect(r.samples).toBe(6);
    expect(r.kl?.mean).toBe(0);
    expect(r.kl?.max).toBe(0);
    expect(r.kl?.note).toBeUndefined();
    const rows = r.per_sample ?? [];
    expect(rows).toHaveLength(6);
    for (const row of rows) {
      expect(row.logp).toBe(row.ref_logp);
      expect(row.logp).toBeLessThan(0);
      expect(row.tokens).toBeGreaterThan(0);
    }
    expect(rows.map((x) => [x.prompt, x.sample])).toEqual([
      ['The movie was', 0], ['The movie was', 1], ['I think that', 0], ['I think that', 1], ['Once upon a time', 0], ['Once upon a time', 1],
    ]);
    // The same model with the same seed as baseline: identical samples, all ties under the reward model.
    expect(r.win_rate).toMatchObject({ judge: `reward_model:${rm0}`, baseline: `model:${ref}`, comparisons: 6, wins: 0, ties: 6, losses: 0, malformed: 0, win_rate: 0.5 });
  });

  it('KL against a different model is positive; reward-model rewards apply reward_offset', async () => {
    const r = await evaluateGenerations({ model: sharp, refModel: ref, prompts, ...FAST, rewardModel: rm1, perSample: true });
    expect(r.kl?.mean).toBeGreaterThan(1);
    expect(r.kl?.policy_logps_mean).toBeGreaterThan(r.kl?.ref_logps_mean as number);
    const rows = r.per_sample ?? [];
    expect(r.kl?.mean).toBeCloseTo(rows.reduce((s, x) => s + (x.logp as number) - (x.ref_logp as number), 0) / rows.length, 4);
    // Same samples scored with offset 0: rewards shift by exactly the offset.
    const r0 = await evaluateGenerations({ model: sharp, prompts, ...FAST, rewardModel: rm0, perSample: true });
    expect(r0.kl).toBeUndefined();
    expect(r0.per_sample?.map((x) => x.completion)).toEqual(rows.map((x) => x.completion));
    rows.forEach((x, i) => expect(x.reward as number).toBeCloseTo((r0.per_sample?.[i].reward as number) - 1.5, 5));
    expect(r.reward?.source).toBe(`reward_model:${rm1}`);
    expect(r.reward?.mean).toBeCloseTo((r0.reward?.mean as number) - 1.5, 4);
    // Not pure sampling: flagged.
    const g = await evaluateGenerations({ model: sharp, refModel: ref, prompts, ...FAST, numSamples: 1, temperature: 0 });
    expect(g.kl?.note).toMatch(/not an unbiased/);
  });

  it('win rate by a scorer against a baseline file, matched by prompt (completions paired by sample)', async () => {
    const baseline = join(dir, 'baseline.jsonl');
    const hundred = Array.from({ length: 100 }, (_, i) => `w${i}`).join(' ');
    writeFileSync(
      baseline,
      [
        JSON.stringify({ prompt: 'Once upon a time', chosen: hundred, rejected: 'x' }),
        JSON.stringify({ prompt: 'The movie was', completion: '' }),
        JSON.stringify({ prompt: 'I think that', completions: [hundred, ''] }),
        JSON.stringify({ prompt: 'unused prompt', completion: 'y' }),
      ].join('\n') + '\n',
    );
    const r = await evaluateGenerations({ model: ref, prompts, ...FAST, scorer: 'length', baselineFile: baseline, perSample: true });
    const rows = r.per_sample ?? [];
    expect(rows.map((x) => x.baseline)).toEqual(['', '', hundred, '', hundred, hundred]);
    expect(rows.map((x) => x.outcome)).toEqual(['win', 'win', 'loss', 'win', 'loss', 'loss']);
    expect(r.win_rate).toMatchObject({ judge: 'scorer:length', baseline: `file:${baseline}`, comparisons: 6, wins: 3, ties: 0, losses: 3, malformed: 0, win_rate: 0.5 });
    rows.forEach((x) => expect(x.reward).toBe(wordCount(x.completion)));
    expect(r.reward?.mean).toBeCloseTo(rows.reduce((s, x) => s + (x.reward as number), 0) / 6, 5);

    // A custom scorer function; a prompt without a baseline row is an error naming it.
    const custom = await evaluateGenerations({ model: ref, prompts, ...FAST, scorer: () => 1, baselineFile: baseline });
    const named = await evaluateGenerations({ model: ref, prompts, ...FAST, numSamples: 1, scorer: () => 2, scorerName: 'two' });
    expect(named.reward).toMatchObject({ source: 'scorer:two', mean: 2 });
    expect(custom.reward).toMatchObject({ source: 'scorer:custom', mean: 1 });
    writeFileSync(baseline, `${JSON.stringify({ prompt: 'The movie was', completion: 'z' })}\n`);
    await expect(evaluateGenerations({ model: ref, prompts, ...FAST, scorer: 'length', baselineFile: baseline })).rejects.toThrow(
      /no baseline completion for 2 prompts \(.*prompts\.jsonl:2, .*prompts\.jsonl:3\)/,
    );
  });

  it('dpo evaluate prints one JSON object, writes --output, a table on stderr', async () => {
    const out = join(dir, 'reports', 'report.json');
    const perSample = join(dir, 'reports', 'samples.jsonl');
    const { code, stdout, stderr } = await run([
      'evaluate', '--model', ref, '--ref-model', ref, '--prompts', prompts, '--scorer', 'sentiment',
      '--num-samples', '2', '--max-new-tokens', '5', '--threads', '1', '--output', out, '--per-sample', perSample,
    ]);
    expect(stderr).not.toMatch(/dpo:/);
    expect(code).toBe(0);
    const lines = stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    const report = JSON.parse(lines[0]) as EvaluationReport;
    expect(report).toMatchObject({ model: ref, ref_model: ref, prompts: 3, samples: 6, samples_per_prompt: 2, kl: { mean: 0 }, reward: { source: 'scorer:sentiment' } });
    expect(report.sampling).toEqual({ temperature: 1, top_k: 0, top_p: 1, max_new_tokens: 5, seed: 0 });
    expect(report.per_sample).toBeUndefined();
    expect(JSON.parse(readFileSync(out, 'utf8'))).toEqual(report);
    expect(readFileSync(perSample, 'utf8').trim().split('\n')).toHaveLength(6);
    expect(stderr).toMatch(/KL\(pi \|\| ref\)\s+0\.0000/);
    expect(stderr).toMatch(/reward \(scorer:sentiment\)/);
  });

  it('dpo evaluate validates its inputs with one clear line', async () => {
    const base = ['evaluate', '--model', ref, '--ref-model', ref, '--prompts', prompts];
    const cases: [string[], RegExp][] = [
      [['evaluate', '--model', ref, '--ref-model', ref, '--prompts', join(dir, 'missing.jsonl')], /^dpo: --prompts: no such file or folder: .*missing\.jsonl$/],
      [['evaluate', '--model', ref, '--prompts', prompts], /^dpo: missing required option --ref-model$/],
      [[...base, '--num-samples', '0'], /^dpo: --num-samples: expected an integer >= 1, got '0'$/],
      [[...base, '--temperature', 'hot'], /^dpo: --temperature: expected a number, got 'hot'$/],
      [[...base, '--top-p', '1.5'], /^dpo: --top-p: expected a number in \(0, 1\], got '1\.5'$/],
      [[...base, '--max-new-tokens', '2.5'], /^dpo: --max-new-tokens: expected an integer, got '2\.5'$/],
      [[...base, '--scorer', 'vibes'], /^dpo: unknown scorer 'vibes' \(known: .*\)$/],
      [[...base, '--scorer', 'length', '--reward-model', rm0], /^dpo: --reward-model and --scorer: give one of them$/],
      [[...base, '--baseline', ref], /^dpo: a win rate needs a judge: --reward-model, --scorer or --judge-url$/],
      [[...base, '--baseline', ref, '--judge-url', 'http://127.0.0.1:9/v1'], /^dpo: --judge-url needs --judge-model/],
      [[...base, '--scorer', 'length', '--baseline-file', join(dir, 'nope.jsonl')], /^dpo: --baseline-file: no such file or folder/],
      [[...base, '--baseline', ref, '--judge-url', 'http://127.0.0.1:9/v1', '--judge-model', 'j', '--judge-api-key-env', 'DPO_TS_TEST_UNSET_VAR'], /^dpo: --judge-api-key-env: environment variable DPO_TS_TEST_UNSET_VAR is not set$/],
      [[...base, '--judge-template', 'poetry'], /^dpo: --judge-template must be one of dialogue, summarization/],
    ];
    for (const [argv, message] of cases) {
      const r = await run(argv);
      expect(r.code, argv.join(' ')).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr.trim().split('\n'), argv.join(' ')).toHaveLength(1);
      expect(r.stderr.trim()).toMatch(message);
    }
    // A malformed prompt row: file:line and reason.
    const bad = join(dir, 'bad-prompts.jsonl');
    writeFileSync(bad, `${JSON.stringify({ prompt: 'ok' })}\n${JSON.stringify({ text: 'no prompt' })}\n`);
    const r = await run(['evaluate', '--model', ref, '--ref-model', ref, '--prompts', bad, '--threads', '1']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^dpo: 1 malformed data row/);
    expect(r.stderr).toContain(`${bad}:2: expected a 'prompt'`);
  });

  describe('with an LLM judge', () => {
    let server: Server;
    let url: string;
    const auth: (string | undefined)[] = [];
    beforeAll(async () => {
      // A position-biased judge: always "A".
      server = createServer((req, res) => {
        auth.push(req.headers.authorization);
        req.resume();
        req.on('end', () => {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ choices: [{ message: { content: 'Comparison: A reads better.\nMore helpful: A' } }] }));
        });
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
    });
    afterAll(async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    });

    it('sends the key from --judge-api-key-env as Bearer, counts splits as ties, and a rerun asks nothing', async () => {
      const baseline = join(dir, 'judge-baseline.jsonl');
      writeFileSync(baseline, PROMPTS.map((p) => JSON.stringify({ prompt: p, completion: ' a fixed baseline answer' })).join('\n') + '\n');
      const cacheDir = join(dir, 'judge-cache');
      process.env.DPO_TS_TEST_JUDGE_KEY = 'k-123';
      const argv = [
        'evaluate', '--model', ref, '--ref-model', ref, '--prompts', prompts, '--baseline-file', baseline,
        '--judge-url', url, '--judge-model', 'stub-judge', '--judge-api-key-env', 'DPO_TS_TEST_JUDGE_KEY',
        '--cache-dir', cacheDir, '--num-samples', '2', '--max-new-tokens', '4', '--threads', '1',
      ];
      const first = await run(argv);
      expect(first.stderr).not.toMatch(/dpo:/);
      expect(first.code).toBe(0);
      const r1 = JSON.parse(first.stdout) as EvaluationReport;
      expect(r1.win_rate).toMatchObject({ judge: 'llm:stub-judge', comparisons: 6, wins: 0, ties: 6, losses: 0, malformed: 0, win_rate: 0.5, asked: 12, cached: 0, http_requests: 12, first_position_rate: 1 });
      expect(r1.reward).toBeUndefined();
      expect(auth).toHaveLength(12);
      expect(auth.every((a) => a === 'Bearer k-123')).toBe(true);
      expect(existsSync(join(cacheDir, 'judge-verdicts.jsonl'))).toBe(true);

      const second = await run(argv);
      expect(second.code).toBe(0);
      const r2 = JSON.parse(second.stdout) as EvaluationReport;
      expect(r2.win_rate).toMatchObject({ ties: 6, asked: 0, cached: 12, http_requests: 0 });
      expect(auth).toHaveLength(12);
      delete process.env.DPO_TS_TEST_JUDGE_KEY;
    });
  });
});
