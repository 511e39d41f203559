/**
 * The experiment's report in a real browser (Debian's chromium via playwright-core; skipped
 * without one): every method in the colour legend, every setting in the marker legend, error bars
 * drawn, the computed reading shown, and a point's numbers in its hover title. A screenshot is
 * written to $DPO_TS_SCREENSHOT_DIR (default: the test's temp folder) to look at.
 */
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FrontierPoint } from '../../src/experiment/frontier.js';
import { poolPoints } from '../../src/experiment/pooling.js';
import { readFrontier } from '../../src/experiment/reading.js';
import { writeExperimentReport } from '../../src/experiment/report.js';
import { poolWinRates } from '../../src/experiment/results.js';
import type { SentimentExperimentSummary } from '../../src/experiment/summary.js';
import { resolveSettings } from '../../src/experiment/sentiment.js';
import { CHROMIUM, launchChromium, warnIfNoChromium } from '../browser.js';
import { tempDir } from '../train/helpers.js';

warnIfNoChromium('experiment report in chromium');

/** Two seeds of a small sweep, rewards rising with KL as the experiment's do. */
function summary(dir: string): SentimentExperimentSummary {
  const settings = { ...resolveSettings({ quick: true, betas: [0.1, 1], targetKls: [3, 6] }), seeds: 2 };
  const points: FrontierPoint[] = [];
  const runs: SentimentExperimentSummary['runs'] = [];
  for (const seed of [0, 1]) {
    const j = seed * 0.01;
    const p = (method: string, setting: string, step: number, reward: number, kl: number, exact = false): void => {
      points.push({ method, setting, step, seed, reward: reward + j, rewardStderr: 0.03, kl: kl + 3 * j, klStderr: exact ? 0 : 0.4, samples: 128 });
    };
    p('reference', '', 0, 0.09, 0);
    for (const [beta, g] of [[0.1, 1], [1, 0.5]] as const) for (const step of [20, 40]) p('DPO', `beta=${beta}`, step, 0.09 + g * step * 0.005, g * step * 0.2);
    for (const [t, g] of [[3, 0.6], [6, 1]] as const) for (const step of [5, 10]) p('PPO', `target_kl=${t}`, step, 0.09 + g * step * 0.006, t * step * 0.1);
    for (const step of [5, 10]) p('PPO-GT', 'target_kl=6', step, 0.09 + step * 0.012, step * 0.6);
    for (const step of [20, 40]) p('Unlikelihood', 'alpha=1', step, 0.09 + step * 0.004, step * 0.25);
    for (const step of [20, 40]) p('Preferred-FT', '', step, 0.09 + step * 0.0045, step * 0.26);
    p('Best-of-N', 'N=4', 4, 0.1, 0.64, true);
    for (const [method, setting] of [['DPO', 'beta=0.1'], ['DPO', 'beta=1'], ['PPO', 'target_kl=3'], ['PPO', 'target_kl=6'], ['PPO-GT', 'target_kl=6'], ['Unlikelihood', 'alpha=1'], ['Preferred-FT', ''], ['Best-of-N', 'N=4']]) {
      const target = Number(setting.split('=')[1]);
      runs.push({ method, setting, seed, seconds: 30, ...(method.startsWith('PPO') ? { trace: Array.from({ length: 10 }, (_, i) => ({ step: i + 1, kl: target * Math.min(1.1, (i + 1) / 6), score: 0.1, klCoef: 0.2 })) } : {}) });
    }
  }
  const pooled = poolPoints(points);
  const s: SentimentExperimentSummary = {
    output: dir, report: join(dir, 'report.html'), frontierFile: join(dir, 'frontier.jsonl'), pairs: 755,
    rewardModel: { dir: '', heldOutAccuracy: 0.7, heldOutPairs: 245 },
    seeds: [0, 1].map((seed) => ({ seed, pairs: 755, heldOutPairs: 245, rewardModelAccuracy: 0.7 })),
    points, pooled, runs, missing: [], settings, winRates: [], pooledWinRates: [], host: { threads: 2, cpu: 'test CPU', cores: 2 }, reading: [], seconds: 300,
  };
  for (const r of runs.filter((x) => x.method !== 'Best-of-N')) {
    const g = r.method === 'DPO' ? 0.15 : 0.05;
    s.winRates.push({ method: r.method, setting: r.setting, seed: r.seed, step: 40, rates: settings.winTemperatures.map((temperature) => ({ temperature, winRate: 0.5 + g * (1.2 - temperature) + 0.01 * r.seed, winRateStderr: 0.04, pairs: 128 })) });
  }
  s.pooledWinRates = poolWinRates(s.winRates);
  s.reading = readFrontier(s);
  return s;
}

describe.skipIf(!CHROMIUM)('experiment report in chromium', () => {
  let browser: Browser;
  beforeAll(async () => {
    browser = await launchChromium();
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
  });

  it('shows the legend, error bars, the reading and hover titles', async () => {
    const dir = tempDir('dpo-ts-experiment-report-');
    const s = summary(dir);
    await writeExperimentReport(s.report, s);
    const page = await browser.newPage({ viewport: { width: 1200, height: 1000 } });
    await page.goto(`file://${s.report}`);
    const svgText = await page.locator('svg').first().textContent();
    for (const m of ['DPO', 'PPO', 'PPO-GT', 'Unlikelihood', 'Preferred-FT', 'Best-of-N', 'reference']) expect(svgText).toContain(m);
    for (const setting of ['beta=0.1', 'beta=1', 'target_kl=3', 'target_kl=6', 'N=4', 'alpha=1']) expect(svgText).toContain(setting);
    expect(svgText).toMatch(/method/);
    expect(svgText).toMatch(/setting/);
    // Error bars: one vertical and one horizontal rule per pooled point.
    expect(await page.locator('svg').first().locator('g.mark-rule path, g.mark-rule line').count()).toBeGreaterThanOrEqual(2 * s.pooled.length);
    expect(await page.locator('.reading p').count()).toBe(s.reading.length);
    expect(await page.locator('svg').count()).toBe(5); // frontier, reward and KL by step, PPO's KL, win rates
    expect(await page.locator('svg').nth(4).textContent()).toContain('win rate against the reference');
    const title = await page.locator('svg').first().locator('g.mark-symbol path title').first().textContent();
    expect(title).toMatch(/method: \w+; setting: .*reward: 0\.\d{3}/);
    const box = await page.locator('svg').first().boundingBox();
    expect(box?.width).toBeGreaterThan(500);
    await page.screenshot({ path: join(process.env.DPO_TS_SCREENSHOT_DIR ?? dir, 'experiment-report.png'), fullPage: true });
    await page.close();
  }, 120_000);
});
