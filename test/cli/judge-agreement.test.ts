/** `dpo judge agreement` end to end against a fake judge server on 127.0.0.1. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { choose, startFakeJudge, type FakeJudge } from '../eval/fake-judge.js';
import { tempDir } from '../train/helpers.js';
import { runCli } from './run-cli.js';

const judges: FakeJudge[] = [];
afterEach(async () => {
  for (const j of judges.splice(0)) await j.close();
});

function files(): { dir: string; alice: string; bob: string } {
  const dir = tempDir();
  const alice = join(dir, 'alice.jsonl');
  const bob = join(dir, 'bob.jsonl');
  const row = (prompt: string, chosen: string, rejected: string): string => JSON.stringify({ prompt, chosen, rejected });
  writeFileSync(alice, [row('q1', 'good 1', 'poor 1'), row('q2', 'poor 2', 'good 2'), row('q3', 'good 3', 'poor 3'), row('q4 malformed', 'good 4', 'poor 4')].join('\n') + '\n');
  writeFileSync(bob, [row('q1', 'good 1', 'poor 1'), row('q2', 'good 2', 'poor 2'), row('q3', 'poor 3', 'good 3')].join('\n') + '\n');
  return { dir, alice, bob };
}

async function judge(): Promise<FakeJudge> {
  const j = await startFakeJudge((r) => (r.query.includes('malformed') ? 'Both have merits.' : choose(r.a.includes('good') ? 'A' : 'B')));
  judges.push(j);
  return j;
}

describe('dpo judge agreement', () => {
  it('prints the tables, the JSON report with --json, and answers a second run from the cache', async () => {
    const { dir, alice, bob } = files();
    const server = await judge();
    const args = ['judge', 'agreement', '--pairs', alice, '--pairs', bob, '--judge-url', server.url, '--judge-model', 'fake', '--cache-dir', join(dir, 'cache')];
    const run = await runCli(args);
    expect(run.stderr).not.toMatch(/^dpo:/m);
    expect(run.code).toBe(0);
    expect(server.requests).toHaveLength(8);
    // alice: agree q1, q3; disagree q2; invalid q4 -> 2/3. bob: agree q1, q2; disagree q3 -> 2/3.
    expect(run.stdout).toMatch(/alice\.jsonl\s+4\s+2\s+1\s+0\s+0\s+1\s+66\.7%\s+\[20\.8, 93\.9\]/);
    expect(run.stdout).toMatch(/bob\.jsonl\s+3\s+2\s+1\s+0\s+0\s+0\s+66\.7%/);
    // Human-human: q1 agree, q2 and q3 disagree -> 1/3.
    expect(run.stdout).toMatch(/Human vs human[\s\S]*alice\.jsonl\s+\S*bob\.jsonl\s+3\s+1\s+33\.3%/);
    expect(run.stdout).toContain(`8 asked, 0 from the cache (${join(dir, 'cache', 'judge-verdicts.jsonl')})`);

    const json = await runCli([...args, '--json']);
    expect(json.code).toBe(0);
    expect(server.requests).toHaveLength(8);
    const report = JSON.parse(json.stdout) as { llm: { asked: number; cached: number }; judge_human: { humans: string; agree: number; invalid: number; agreement: { rate: number } }[]; human_human: { shared: number; agreement: { agree: number } }[] };
    expect(report.llm).toMatchObject({ asked: 0, cached: 8 });
    expect(report.judge_human.map((h) => [h.agree, h.invalid, h.agreement.rate])).toEqual([
      [2, 1, 2 / 3],
      [2, 0, 2 / 3],
      [4, 1, 4 / 6],
    ]);
    expect(report.human_human).toMatchObject([{ shared: 3, agreement: { agree: 1 } }]);
  });

  it('bad input: one line and exit code 1', async () => {
    const { dir, alice } = files();
    const server = await judge();
    const other = join(dir, 'other.jsonl');
    writeFileSync(other, '{"prompt":"elsewhere","chosen":"a","rejected":"b"}\n');
    const base = ['--judge-url', server.url, '--judge-model', 'fake', '--cache-dir', join(dir, 'cache')];
    const cases: [string[], RegExp][] = [
      [['--pairs', alice, '--pairs', other, ...base], /share no labelled comparison \(no prompt in common\)/],
      [['--pairs', alice], /no judge: give --judge-url and --judge-model/],
      [['--pairs', alice, '--judge-url', server.url], /--judge-url needs --judge-model/],
      [['--pairs', alice, '--scorer', 'length', ...base], /--scorer and --judge-url: give one judge/],
      [['--pairs', alice, '--scorer', 'nope'], /unknown scorer 'nope'/],
      [['--pairs', join(dir, 'missing.jsonl'), '--scorer', 'length'], /data path not found/],
      [['--pairs', alice, ...base, '--judge-concurrency', '0'], /--judge-concurrency: expected an integer >= 1, got '0'/],
      [['--pairs', alice, '--judge-url', 'ftp://x', '--judge-model', 'm'], /--judge-url: must start with http/],
      [[...base], /missing required option --pairs/],
    ];
    for (const [args, message] of cases) {
      const r = await runCli(['judge', 'agreement', ...args]);
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.stderr).toMatch(message);
      expect(r.stderr.trim().split('\n'), r.stderr).toHaveLength(1);
    }
    expect(server.requests).toHaveLength(0);
  });

  it('a judge error status or a broken reply stops with one line', async () => {
    const { dir, alice } = files();
    const denied = await startFakeJudge(() => ({ status: 401 }));
    judges.push(denied);
    const r = await runCli(['judge', 'agreement', '--pairs', alice, '--judge-url', denied.url, '--judge-model', 'm', '--cache-dir', dir]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^dpo: judge http:\/\/127\.0\.0\.1:\d+\/v1\/chat\/completions: HTTP 401/m);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    // A reply that is not JSON is retried, then stops the run with one line.
    const broken = await startFakeJudge(() => ({ raw: '<html>gateway</html>' }));
    judges.push(broken);
    const b = await runCli(['judge', 'agreement', '--pairs', alice, '--judge-url', broken.url, '--judge-model', 'm', '--cache-dir', dir, '--judge-max-attempts', '1']);
    expect(b.code).toBe(1);
    expect(b.stderr).toMatch(/^dpo: judge .*no answer after 1 attempts \(last: HTTP 200 with a body that is not JSON: <html>gateway<\/html>\)/m);
  });

  it('runs offline with a scorer, and malformed rows can be skipped and counted', async () => {
    const dir = tempDir();
    const f = join(dir, 'prefs.jsonl');
    writeFileSync(f, '{"prompt":"p","chosen":"one two","rejected":"one"}\n{"prompt":"p2"}\n');
    const strict = await runCli(['judge', 'agreement', '--pairs', f, '--scorer', 'length']);
    expect(strict.code).toBe(1);
    expect(strict.stderr).toContain("prefs.jsonl:2: missing field 'chosen'");
    const r = await runCli(['judge', 'agreement', '--pairs', f, '--scorer', 'length', '--on-bad-row', 'skip', '--json']);
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout) as { judge: unknown; files: unknown[]; judge_human: { agree: number; agreement: { rate: number } }[] };
    expect(report.judge).toEqual({ kind: 'scorer', scorer: 'length' });
    expect(report.files).toEqual([{ file: f, comparisons: 1, bad_rows: 1, duplicates: 0 }]);
    expect(report.judge_human[0].agreement.rate).toBe(1);
  });

  it('--help shows the flags read off the schema and an example', async () => {
    const r = await runCli(['judge', 'agreement', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/--pairs <file>[\s\S]*--template <name>[\s\S]*choices: "dialogue", "summarization"[\s\S]*--json/);
    expect(r.stdout).toContain('$ dpo judge agreement --pairs alice.jsonl --pairs bob.jsonl');
    expect(r.stdout).not.toContain('--no-json');
  });
});
