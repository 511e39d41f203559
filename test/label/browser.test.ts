/**
 * `dpo label` in a real browser: Debian's chromium driven by playwright-core (no browser
 * download). The CLI is started as a user starts it; keys are pressed on the page; the files it
 * writes are read back, and the output must load as `dpo train` data. Skipped, with a message,
 * when no chromium is installed (apt-get install chromium).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadPreferenceData } from '../../src/data/load.js';
import { runLabel } from '../../src/label/run.js';
import { CHROMIUM, launchChromium, warnIfNoChromium } from '../browser.js';

warnIfNoChromium('test/label/browser.test.ts');

const ROOT = join(import.meta.dirname, '..', '..');
const MODEL = join(ROOT, 'assets', 'brown-gpt2');
const PROMPTS = ['The movie was', 'Our trip to the city', 'The new restaurant', 'I believe the plan'];

function startCli(args: string[]): Promise<{ child: ChildProcess; url: string; stdout: () => string; stderr: () => string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'test', 'cli', 'dpo-bin.ts'), 'label', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  return new Promise((resolve, reject) => {
    child.stderr?.on('data', (d: Buffer) => {
      err += d.toString();
      const m = /open (http:\/\/127\.0\.0\.1:\d+\/)/.exec(err);
      if (m) resolve({ child, url: m[1], stdout: () => out, stderr: () => err });
    });
    child.on('exit', (code) => reject(new Error(`dpo label exited with ${code} before serving: ${err}`)));
  });
}

function exited(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => child.on('exit', (code) => resolve(code)));
}

async function shown(page: Page, promptIndex: number): Promise<string[]> {
  // Playwright's selector engine, not page.waitForFunction: the page's CSP forbids eval.
  await page.waitForSelector(`#prompt-index:text-is("prompt ${promptIndex + 1}")`);
  await page.waitForSelector('.card');
  expect(await page.textContent('#prompt-text')).toBe(PROMPTS[promptIndex]);
  return page.$$eval('.card pre', (els) => els.map((e) => e.textContent ?? ''));
}

function lines(path: string): unknown[] {
  return existsSync(path) ? readFileSync(path, 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as unknown) : [];
}

describe.skipIf(!CHROMIUM)('dpo label in chromium', () => {
  let browser: Browser;
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'dpo-label-'));
    writeFileSync(join(dir, 'prompts.jsonl'), PROMPTS.map((p) => `${JSON.stringify({ prompt: p })}\n`).join(''));
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('pairs: keys 1/2, t, s, u; progress; Ctrl-C; resume appends; dpo train reads the output', async () => {
    const output = join(dir, 'prefs.jsonl');
    const skipped = join(dir, 'prefs.skipped.jsonl');
    const args = ['--model', MODEL, '--prompts', join(dir, 'prompts.jsonl'), '--output', output, '--port', '0', '--max-new-tokens', '8', '--threads', '1'];
    const cli = await startCli(args);
    const page = await browser.newPage();
    try {
      await page.goto(cli.url);
      const first = await shown(page, 0);
      expect(first).toHaveLength(2);
      await page.keyboard.press('2');
      const second = await shown(page, 1);
      expect(lines(output)).toEqual([{ prompt: PROMPTS[0], chosen: first[1], rejected: first[0] }]);
      await page.keyboard.press('t');
      await shown(page, 2);
      expect(lines(skipped)).toEqual([{ prompt: PROMPTS[1], completions: second, label: 'tie' }]);
      await page.keyboard.press('u');
      expect(await shown(page, 1)).toEqual(second); // the same completions again
      expect(lines(skipped)).toEqual([]);
      await page.keyboard.press('s');
      await shown(page, 2);
      expect(lines(skipped)).toEqual([{ prompt: PROMPTS[1], completions: second, label: 'skip' }]);
      expect(await page.textContent('#progress-text')).toBe('2 / 4 prompts decided');
      expect(await page.textContent('#counts')).toContain('1 preferences · 0 ties · 1 skipped');
    } finally {
      await page.close();
    }
    cli.child.kill('SIGINT');
    expect(await exited(cli.child)).toBe(0);
    expect(JSON.parse(cli.stdout())).toMatchObject({ output, total: 4, done: 2, preferences: 1, ties: 0, skips: 1 });

    // Resume: the decided prompts are not shown again; new rows go after the old bytes.
    const before = readFileSync(output, 'utf8');
    const resumed = await runLabel({ model: MODEL, prompts: join(dir, 'prompts.jsonl'), output, port: 0, maxNewTokens: 8, threads: 1 });
    const again = await browser.newPage();
    try {
      await again.goto(resumed.url);
      const third = await shown(again, 2);
      expect(await again.textContent('#progress-text')).toBe('2 / 4 prompts decided');
      await again.click('.card[data-index="0"]'); // the mouse works too
      await shown(again, 3);
      await again.keyboard.press('1');
      await again.waitForSelector('#done', { state: 'visible' });
      expect(await again.textContent('#progress-text')).toBe('4 / 4 prompts decided');
      expect(readFileSync(output, 'utf8').startsWith(before)).toBe(true);
      expect(lines(output)).toHaveLength(3);
      expect(lines(output)[1]).toEqual({ prompt: PROMPTS[2], chosen: third[0], rejected: third[1] });
    } finally {
      await again.close();
      await resumed.close();
    }
    const data = await loadPreferenceData(output);
    expect(data.examples).toHaveLength(3);
    expect(data.files[0].format).toBe('prompt_chosen_rejected');
  });

  it('rankings of K = 3: pressing in order of preference, undoing a pick', async () => {
    const output = join(dir, 'ranks.jsonl');
    const running = await runLabel({ model: MODEL, prompts: join(dir, 'prompts.jsonl'), output, port: 0, numCompletions: 3, maxNewTokens: 8, threads: 1 });
    const page = await browser.newPage();
    try {
      await page.goto(running.url);
      const c = await shown(page, 0);
      expect(c).toHaveLength(3);
      await page.keyboard.press('2');
      expect(await page.textContent('.card[data-index="1"] .rank')).toBe('#1');
      await page.keyboard.press('Backspace'); // takes back the pick, not a decision
      expect(await page.$$('.card .rank')).toHaveLength(0);
      await page.keyboard.press('3');
      await page.keyboard.press('1'); // the last one (2) is implied
      await shown(page, 1);
      expect(lines(output)).toEqual([{ prompt: PROMPTS[0], completions: [c[2], c[0], c[1]] }]);
      const data = await loadPreferenceData(output);
      expect(data.files[0].format).toBe('ranking');
    } finally {
      await page.close();
      await running.close();
    }
  });
});
