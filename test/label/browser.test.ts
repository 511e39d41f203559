/**
 * `dpo label` in a real browser: Debian's chromium driven by playwright-core (no browser
 * download). The CLI is started as a user starts it; keys are pressed on the page; the files it
 * writes are read back, and the output must load as `dpo train` data. Skipped, with a message,
 * when no chromium is installed (apt-get install chromium).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadPreferenceData } from '../../src/data/load.js';
import { runLabel } from '../../src/label/run.js';
import { LabelSession } from '../../src/label/session.js';
import { startLabelServer } from '../../src/label/server.js';
import { LabelStore } from '../../src/label/store.js';
import { fullDisk } from './row-files.js';
import { CHROMIUM, launchChromium, warnIfNoChromium } from '../browser.js';

warnIfNoChromium('test/label/browser.test.ts');

const ROOT = join(import.meta.dirname, '..', '..');
const MODEL = join(ROOT, 'assets', 'brown-gpt2');
const PROMPTS = ['The movie was', 'Our trip to the city', 'The new restaurant', 'I believe the plan'];
/** Screenshots of the page, kept as test artefacts (out/ is gitignored). */
const ARTEFACTS = join(ROOT, 'out', 'test-artifacts', 'label');

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

async function screenshot(page: Page, name: string): Promise<void> {
  mkdirSync(ARTEFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTEFACTS, `${name}.png`), fullPage: false });
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
    let second: string[] = [];
    try {
      await page.goto(cli.url);
      const first = await shown(page, 0);
      expect(first).toHaveLength(2);
      // 8 new tokens from a model that rarely ends so soon: the page says why each one ended.
      for (const end of await page.$$eval('.card .end', (els) => els.map((e) => e.textContent))) expect(['cut at the token limit', 'ended (end of sequence)']).toContain(end);
      expect(await page.$$('.card .end')).toHaveLength(2);
      await screenshot(page, 'pairs-model');
      await page.keyboard.press('2');
      second = await shown(page, 1);
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

    // Resume: the decided prompt is not shown again, the skipped one is (with the same
    // completions); new rows go after the old bytes.
    const before = readFileSync(output, 'utf8');
    const resumed = await runLabel({ model: MODEL, prompts: join(dir, 'prompts.jsonl'), output, port: 0, maxNewTokens: 8, threads: 1 });
    const again = await browser.newPage();
    try {
      await again.goto(resumed.url);
      expect(await shown(again, 1)).toEqual(second);
      expect(await again.textContent('#progress-text')).toBe('1 / 4 prompts decided');
      await again.keyboard.press('s'); // still not now
      const third = await shown(again, 2);
      expect(await again.textContent('#progress-text')).toBe('2 / 4 prompts decided');
      await again.click('.card[data-index="0"]'); // the mouse works too
      await shown(again, 3);
      await again.keyboard.press('1');
      await again.waitForSelector('#done', { state: 'visible' });
      expect(await again.textContent('#progress-text')).toBe('4 / 4 prompts decided');
      expect(await again.textContent('#done')).toContain('1 skipped prompt is offered again when you run the same command again.');
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

/** Long conversational completions of K = 4, as another model or an API might give them. */
function longRows(): unknown[] {
  const para = (who: string, n: number): string =>
    Array.from({ length: n }, (_, i) => `${who}, paragraph ${i + 1}: the answer goes on about the question at some length, so that a reader has to scroll to see all of it.`).join('\n\n');
  return [
    {
      prompt: [
        { role: 'system', content: 'You are a careful assistant.' },
        { role: 'user', content: 'Explain why the sky is blue, in plain words.' },
      ],
      completions: [para('Answer A', 14), para('Answer B', 3), para('Answer C', 20), 'Rayleigh scattering.'],
      finish_reasons: ['length', 'eos', 'length', 'eos'],
    },
    { prompt: [{ role: 'user', content: 'And sunsets?' }], completions: ['Red light.', 'Longer path.', 'Dust.', 'Magic.'], finish_reasons: ['eos', 'eos', 'stop', null] },
    { prompt: 'A plain prompt', completions: [' one', ' two', ' three', ' four'] },
  ];
}

describe.skipIf(!CHROMIUM)('dpo label --completions in chromium', () => {
  let browser: Browser;
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'dpo-label-completions-'));
    writeFileSync(join(dir, 'samples.jsonl'), longRows().map((r) => `${JSON.stringify(r)}\n`).join(''));
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('K = 4 chat completions: turns, why each ended, wide scrolling cards, prompt in view; skip comes back on resume; a stopped server says so', async () => {
    const output = join(dir, 'ranks.jsonl');
    const args = ['--completions', join(dir, 'samples.jsonl'), '--output', output, '--port', '0'];
    const cli = await startCli(args);
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    try {
      await page.goto(cli.url);
      await page.waitForSelector('#prompt-index:text-is("prompt 1")');
      // The conversation as turns, never as template markup.
      expect(await page.$$eval('#prompt-text .turn', (els) => els.map((e) => [e.querySelector('.role')?.textContent, e.querySelector('pre')?.textContent]))).toEqual([
        ['system', 'You are a careful assistant.'],
        ['user', 'Explain why the sky is blue, in plain words.'],
      ]);
      expect(await page.textContent('body')).not.toMatch(/<\|im_start\|>|\[INST\]/);
      expect(await page.$$eval('.card .end', (els) => els.map((e) => e.textContent))).toEqual([
        'cut at the token limit',
        'ended (end of sequence)',
        'cut at the token limit',
        'ended (end of sequence)',
      ]);
      // Wide cards (two columns at 1280 px), long ones scroll inside the card.
      const cards = await page.$$eval('.card', (els) => els.map((e) => e.getBoundingClientRect().width));
      expect(Math.min(...cards)).toBeGreaterThan(500);
      const scroll = await page.$$eval('.card .text', (els) =>
        els.map((e) => {
          const taller = e.scrollHeight > e.clientHeight + 1;
          e.scrollTop = 50; // scrolls inside the card when the card is full
          const moved = e.scrollTop > 0;
          e.scrollTop = 0;
          return { taller, moved };
        }),
      );
      expect(scroll).toEqual([true, false, true, false].map((t) => ({ taller: t, moved: t })));
      await screenshot(page, 'k4-chat');
      // Scrolled down to the lower cards, the prompt is still in view.
      await page.mouse.wheel(0, 2000);
      await page.waitForTimeout(200);
      const top = await page.$eval('#prompt', (e) => e.getBoundingClientRect().top);
      expect(top).toBeGreaterThanOrEqual(0);
      expect(top).toBeLessThan(40);
      await screenshot(page, 'k4-chat-scrolled');
      // Rank 3 > 1 > 4 > 2, then skip the second prompt.
      for (const k of ['3', '1', '4']) await page.keyboard.press(k);
      await page.waitForSelector('#prompt-index:text-is("prompt 2")');
      expect(await page.$$eval('.card .end', (els) => els.map((e) => e.textContent))).toEqual(['ended (end of sequence)', 'ended (end of sequence)', 'ended at a stop string']);
      await page.keyboard.press('s');
      await page.waitForSelector('#prompt-index:text-is("prompt 3")');
      expect(await page.$$('.card .end')).toHaveLength(0); // no finish_reasons in that row: nothing claimed
    } finally {
      await page.close();
    }
    cli.child.kill('SIGINT');
    expect(await exited(cli.child)).toBe(0);
    const rows = lines(output) as { completions: unknown[] }[];
    expect(rows).toHaveLength(1);
    const given = longRows()[0] as { completions: string[] };
    expect(rows[0].completions).toEqual([2, 0, 3, 1].map((i) => [{ role: 'assistant', content: given.completions[i] }]));

    // Resume: the skipped prompt is offered again. Then the server stops under the page.
    const again = await startCli(args);
    const page2 = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    try {
      await page2.goto(again.url);
      await page2.waitForSelector('#prompt-index:text-is("prompt 2")');
      expect(await page2.textContent('#counts')).toContain('1 rankings · 0 ties · 1 skipped');
      again.child.kill('SIGINT');
      expect(await exited(again.child)).toBe(0);
      await page2.keyboard.press('t');
      await page2.waitForSelector('#message:has-text("server is gone")');
      expect(await page2.textContent('#message')).toBe(
        `The server is gone (stopped?); your answers so far are saved in ${output}. Run the same dpo label command again to go on, then reload this page.`,
      );
      // The page keeps its state: the same prompt and cards are still there.
      expect(await page2.textContent('#prompt-index')).toBe('prompt 2');
      expect(await page2.$$('.card')).toHaveLength(4);
      await screenshot(page2, 'server-gone');
    } finally {
      await page2.close();
    }
  });

  it('a full disk: the page shows the error, keeps the prompt and its picks undone, and the same keys save it once there is space', async () => {
    const output = join(dir, 'full.jsonl');
    let full = true;
    const store = await LabelStore.open(output, { openFile: fullDisk(() => full) });
    const rows = longRows() as { prompt: string; completions: string[] }[];
    const session = new LabelSession({ prompts: rows.map((r, i) => ({ prompt: r.prompt, text: '', origin: { file: 'x', line: i + 1 } })), completions: rows.map((r) => ({ texts: r.completions })), numCompletions: 4, store });
    const server = await startLabelServer(session, { port: 0 });
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    try {
      await page.goto(server.url);
      await page.waitForSelector('#prompt-index:text-is("prompt 1")');
      for (const k of ['2', '1', '3']) await page.keyboard.press(k);
      await page.waitForSelector('#message:has-text("no space left")');
      expect(await page.textContent('#message')).toBe(`could not save the decision to ${output} (ENOSPC: no space left on device, write); nothing was written: free some space and choose again`);
      expect(await page.textContent('#prompt-index')).toBe('prompt 1');
      // The picks before the last stay (cards 2 and 1); the last one and the implied one are taken back.
      expect(await page.$$eval('.card .rank', (els) => els.map((e) => e.textContent))).toEqual(['#2', '#1']);
      expect(readFileSync(output, 'utf8')).toBe('');
      const box = await page.$eval('#message', (e) => e.getBoundingClientRect().bottom);
      expect(box).toBeLessThanOrEqual(800); // in the window, though the cards are taller than it
      await screenshot(page, 'disk-full');
      full = false;
      await page.keyboard.press('3'); // the same ranking again: sent with the same request id
      await page.waitForSelector('#prompt-index:text-is("prompt 2")');
      expect(await page.textContent('#message')).toBe('');
      expect((lines(output) as { completions: unknown[] }[]).map((r) => r.completions.length)).toEqual([4]);
    } finally {
      await page.close();
      await server.close();
      await store.close();
    }
  });
});
