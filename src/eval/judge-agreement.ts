/**
 * How far a judge agrees with people, as in the DPO paper's human study (Table 2): the judge's
 * verdict on human-labelled comparisons against the human's choice, and, with several people's
 * labels of the same comparisons, how often two people agree with each other.
 *
 * - Comparisons: each preference row gives one (prompt, chosen, rejected) comparison; a ranking
 *   row (`completions`, best first) gives every pair of its completions. A comparison is the same
 *   in two files when the prompt and the two completions are (in either order).
 * - The judge: a {@link PairJudge} (pair-judge.ts): an LLM asked in both orders with the verdict
 *   cache, or a scorer offline. Its verdict agrees or disagrees with the human, or is a tie,
 *   position-inconsistent or invalid (an answer naming no choice; counted, never guessed).
 * - Agreement = agree / (agree + disagree + ties + inconsistent): a tie or a split does not agree
 *   with a person who chose. `decisive_agreement` = agree / (agree + disagree). Invalid verdicts
 *   are left out of both. Intervals: Wilson score at 95% (the pooled rows treat every judgment as
 *   independent, although files share comparisons).
 * - Human-human: for every two files, on the comparisons both labelled, the share where they chose
 *   the same completion; pooled over all file pairs as the paper's single "H-H" figure.
 */
import { DpoError } from '../errors.js';
import { loadPreferenceData } from '../data/load.js';
import { listDataFiles } from '../data/read.js';
import type { BadRow, OnBadRow, PreferenceExample, RowOrigin } from '../data/types.js';
import { wilsonInterval } from './intervals.js';
import type { JudgeVerdict, LlmJudgeStats, PairJudge } from './pair-judge.js';

/** One human judgment: of the two completions, `chosen` was preferred. */
export interface HumanJudgment {
  prompt: string;
  chosen: string;
  rejected: string;
  origin: RowOrigin;
}

/** One person's (or one file's) labels. */
export interface HumanLabels {
  /** Name shown in the report (the file path). */
  name: string;
  judgments: HumanJudgment[];
  /** Rows that could not be read (with onBadRow 'skip'). */
  badRows: BadRow[];
  /** Comparisons labelled again later in the same file: the first label is kept. */
  duplicates: number;
}

/** The key of a comparison: the prompt and the two completions, in either order. */
export function comparisonKey(prompt: string, x: string, y: string): string {
  return JSON.stringify(x <= y ? [prompt, x, y] : [prompt, y, x]);
}

/** Builds labels from judgments already in memory (first label of a repeated comparison kept). */
export function humanLabels(name: string, judgments: readonly HumanJudgment[], badRows: BadRow[] = []): HumanLabels {
  const seen = new Set<string>();
  const kept: HumanJudgment[] = [];
  for (const j of judgments) {
    const key = comparisonKey(j.prompt, j.chosen, j.rejected);
    if (seen.has(key)) continue;
    seen.add(key);
    kept.push(j);
  }
  return { name, judgments: kept, badRows, duplicates: judgments.length - kept.length };
}

/**
 * Reads one file (or folder) of human preferences with the project's preference readers: any
 * prompt/chosen/rejected, chosen/rejected, Anthropic HH or ranking file (`dpo label` output
 * included). Conversational (message-list) rows need a chat template and are refused. Ties a
 * person recorded with `dpo label` (its .skipped.jsonl) are not preferences: those comparisons
 * are simply not labelled by that person.
 */
export async function loadHumanLabels(path: string, options: { onBadRow?: OnBadRow } = {}): Promise<HumanLabels> {
  // Its {"prompt", "completions", "label": "tie"|"skip"} rows would read as rankings (a preference).
  if (path.endsWith('.skipped.jsonl')) throw new DpoError(`${path}: this is dpo label's file of ties and skips, not preferences; give the preference file it sits beside`);
  // In a folder, dpo label's sidecars sit beside the preference files: leave them out.
  const files = (await listDataFiles(path)).filter((f) => !f.endsWith('.skipped.jsonl'));
  const examples: PreferenceExample[] = [];
  const badRows: BadRow[] = [];
  for (const file of files) {
    const data = await loadPreferenceData(file, { onBadRow: options.onBadRow ?? 'error' }).catch((e: unknown) => {
      // The reader asks for a tokenizer's chat template; here there is none to give.
      if (e instanceof DpoError && e.message.startsWith(`${file}: conversational data`)) throw new DpoError(`${file}: conversational (message-list) rows; the judge reads text rows (prompt/chosen/rejected strings)`);
      throw e;
    });
    examples.push(...data.examples);
    badRows.push(...data.badRows);
  }
  const judgments: HumanJudgment[] = [];
  for (const ex of examples) {
    const c = ex.completions;
    for (let i = 0; i < c.length; i++) {
      for (let j = i + 1; j < c.length; j++) judgments.push({ prompt: ex.prompt, chosen: c[i], rejected: c[j], origin: ex.origin });
    }
  }
  if (judgments.length === 0) throw new DpoError(`${path}: no labelled comparisons${badRows.length ? ` (${badRows.length} malformed rows skipped)` : ''}`);
  return humanLabels(path, judgments, badRows);
}

/** One agreement rate with its counts and interval. */
export interface AgreementRate {
  /** Judgments compared. */
  n: number;
  agree: number;
  /** agree / n, or null when n = 0. */
  rate: number | null;
  /** 95% Wilson interval of `rate`. */
  interval: [number, number] | null;
}

function rate(agree: number, n: number): AgreementRate {
  return { n, agree, rate: n > 0 ? agree / n : null, interval: wilsonInterval(agree, n) };
}

/** The judge against one person's labels (or all of them pooled). */
export interface JudgeHumanAgreement {
  /** The file, or 'all' for every file's judgments pooled. */
  humans: string;
  /** Human judgments looked at. */
  judgments: number;
  agree: number;
  disagree: number;
  ties: number;
  inconsistent: number;
  invalid: number;
  /** agree / (agree + disagree + ties + inconsistent). */
  agreement: AgreementRate;
  /** agree / (agree + disagree). */
  decisive_agreement: AgreementRate;
}

export interface HumanHumanAgreement {
  /** The two files, or ['all', 'all'] for every pair of files pooled. */
  a: string;
  b: string;
  /** Comparisons both labelled. */
  shared: number;
  agreement: AgreementRate;
}

export interface AgreementReport {
  judge: Record<string, string | number | null>;
  /** Per file: comparisons read, malformed rows skipped, repeated comparisons dropped. */
  files: { file: string; comparisons: number; bad_rows: number; duplicates: number }[];
  /** Distinct comparisons judged (a comparison labelled in several files is judged once). */
  comparisons: number;
  /** Verdict counts over the distinct comparisons. */
  verdicts: Record<'decisive' | 'tie' | 'inconsistent' | 'invalid', number>;
  judge_human: JudgeHumanAgreement[];
  human_human: HumanHumanAgreement[];
  /** LLM judges only. */
  llm?: LlmJudgeStats;
}

function tally(humans: string, pairs: readonly { human: HumanJudgment; verdict: JudgeVerdict; x: string }[]): JudgeHumanAgreement {
  const c = { agree: 0, disagree: 0, ties: 0, inconsistent: 0, invalid: 0 };
  for (const { human, verdict, x } of pairs) {
    if (verdict === 'tie') c.ties++;
    else if (verdict === 'inconsistent') c.inconsistent++;
    else if (verdict === 'invalid') c.invalid++;
    else if ((verdict === 'x') === (human.chosen === x)) c.agree++;
    else c.disagree++;
  }
  const valid = c.agree + c.disagree + c.ties + c.inconsistent;
  return { humans, judgments: pairs.length, ...c, agreement: rate(c.agree, valid), decisive_agreement: rate(c.agree, c.agree + c.disagree) };
}

/**
 * Checks that every two label sets share comparisons (else they are not labels of the same
 * pairs: a DpoError naming both) and returns the human-human agreement of each pair of sets and,
 * with three or more, all pairs pooled.
 */
export function humanHumanAgreement(labels: readonly HumanLabels[]): HumanHumanAgreement[] {
  const maps = labels.map((l) => new Map(l.judgments.map((j) => [comparisonKey(j.prompt, j.chosen, j.rejected), j.chosen])));
  const out: HumanHumanAgreement[] = [];
  let [pooledShared, pooledAgree] = [0, 0];
  for (let i = 0; i < labels.length; i++) {
    for (let j = i + 1; j < labels.length; j++) {
      let [shared, agree] = [0, 0];
      for (const [key, chosen] of maps[i]) {
        const other = maps[j].get(key);
        if (other === undefined) continue;
        shared++;
        if (other === chosen) agree++;
      }
      if (shared === 0) {
        const promptsA = new Set(labels[i].judgments.map((x) => x.prompt));
        const common = new Set(labels[j].judgments.map((x) => x.prompt).filter((p) => promptsA.has(p))).size;
        const why = common === 0 ? 'no prompt in common' : `${common} prompt${common === 1 ? '' : 's'} in common but different completions`;
        throw new DpoError(`${labels[i].name} and ${labels[j].name} share no labelled comparison (${why}): human-human agreement needs labels of the same pairs`);
      }
      pooledShared += shared;
      pooledAgree += agree;
      out.push({ a: labels[i].name, b: labels[j].name, shared, agreement: rate(agree, shared) });
    }
  }
  if (out.length > 1) out.push({ a: 'all', b: 'all', shared: pooledShared, agreement: rate(pooledAgree, pooledShared) });
  return out;
}

/**
 * The agreement study: checks the label sets against each other, judges every distinct
 * comparison once, and reports judge-human agreement per file (and pooled), human-human agreement
 * and the verdict counts.
 */
export async function judgeAgreement(labels: readonly HumanLabels[], judge: PairJudge): Promise<AgreementReport> {
  if (labels.length === 0) throw new DpoError('judge agreement: give at least one file of human preferences');
  const humanHuman = humanHumanAgreement(labels);
  // Distinct comparisons, oriented as first met (x = the first file's chosen completion).
  const index = new Map<string, number>();
  const items: { prompt: string; x: string; y: string }[] = [];
  for (const l of labels) {
    for (const j of l.judgments) {
      const key = comparisonKey(j.prompt, j.chosen, j.rejected);
      if (index.has(key)) continue;
      index.set(key, items.length);
      items.push({ prompt: j.prompt, x: j.chosen, y: j.rejected });
    }
  }
  const verdicts = await judge.judge(items);
  if (verdicts.length !== items.length) throw new Error(`judge returned ${verdicts.length} verdicts for ${items.length} comparisons`);
  const per = labels.map((l) =>
    l.judgments.map((human) => {
      const k = index.get(comparisonKey(human.prompt, human.chosen, human.rejected)) as number;
      return { human, verdict: verdicts[k], x: items[k].x };
    }),
  );
  const judgeHuman = labels.map((l, i) => tally(l.name, per[i]));
  if (labels.length > 1) judgeHuman.push(tally('all', per.flat()));
  const counts = { decisive: 0, tie: 0, inconsistent: 0, invalid: 0 };
  for (const v of verdicts) counts[v === 'x' || v === 'y' ? 'decisive' : v]++;
  return {
    judge: judge.describe,
    files: labels.map((l) => ({ file: l.name, comparisons: l.judgments.length, bad_rows: l.badRows.length, duplicates: l.duplicates })),
    comparisons: items.length,
    verdicts: counts,
    judge_human: judgeHuman,
    human_human: humanHuman,
    ...(judge.stats ? { llm: judge.stats } : {}),
  };
}

const pct = (r: AgreementRate): string => (r.rate === null ? '-' : `${(100 * r.rate).toFixed(1)}%`);
const ci = (r: AgreementRate): string => (r.interval === null ? '-' : `[${(100 * r.interval[0]).toFixed(1)}, ${(100 * r.interval[1]).toFixed(1)}]`);

/** Rows as aligned columns: the first `left` columns (names) left-aligned, numbers right-aligned. */
function table(rows: readonly string[][], left = 1): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows.map((r) => r.map((cell, c) => (c < left ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  ').trimEnd()).join('\n');
}

/** The report as terminal tables. */
export function formatAgreementReport(r: AgreementReport): string {
  const j = r.judge;
  const who = j.kind === 'llm' ? `${j.model} at ${j.url} (template ${j.template})` : `scorer '${j.scorer}'`;
  const lines = [`Judge: ${who}`, `Comparisons judged: ${r.comparisons} (decisive ${r.verdicts.decisive}, tie ${r.verdicts.tie}, position-inconsistent ${r.verdicts.inconsistent}, invalid ${r.verdicts.invalid})`];
  if (r.llm) {
    const bias = r.llm.first_position_rate === null ? '-' : `${(100 * r.llm.first_position_rate).toFixed(1)}%`;
    lines.push(`Judge questions: ${r.llm.asked} asked, ${r.llm.cached} from the cache${j.cache ? ` (${j.cache})` : ''}; first position chosen in ${bias} of valid answers`);
  }
  for (const f of r.files) if (f.bad_rows || f.duplicates) lines.push(`${f.file}: ${f.bad_rows} malformed rows skipped, ${f.duplicates} repeated comparisons dropped`);
  lines.push('', 'Judge vs humans (agreement = agree / (agree + disagree + ties + inconsistent); 95% Wilson intervals)');
  lines.push(
    table([
      ['humans', 'n', 'agree', 'disagree', 'ties', 'inconsistent', 'invalid', 'agreement', '95% CI', 'decisive', '95% CI'],
      ...r.judge_human.map((h) => [h.humans, String(h.judgments), String(h.agree), String(h.disagree), String(h.ties), String(h.inconsistent), String(h.invalid), pct(h.agreement), ci(h.agreement), pct(h.decisive_agreement), ci(h.decisive_agreement)]),
    ]),
  );
  if (r.human_human.length > 0) {
    lines.push('', 'Human vs human (comparisons both labelled)');
    lines.push(table([['a', 'b', 'shared', 'agree', 'agreement', '95% CI'], ...r.human_human.map((h) => [h.a, h.b, String(h.shared), String(h.agreement.agree), pct(h.agreement), ci(h.agreement)])], 2));
  }
  return `${lines.join('\n')}\n`;
}
