/**
 * Config keys carry their meaning into an editor: src/train/core/config-docs.ts is generated from the
 * schemas' help (and must be up to date), an editor's hover over a key of `DPOConfigInput` shows
 * that help and default (checked with TypeScript's language service, as an editor asks it), and a
 * misspelt loss type does not compile.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { CONFIG_DOCS_FILE, renderConfigDocs } from '../../../scripts/gen-config-docs.js';
import type { DPOConfigInput } from '../../../src/train/dpo/config.js';

const ROOT = join(import.meta.dirname, '..', '..', '..');

/** A language service over the repository's sources plus one in-memory file. */
function service(fileName: string, text: string): ts.LanguageService {
  const config = ts.getParsedCommandLineOfConfigFile(join(ROOT, 'tsconfig.json'), {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => {} });
  if (!config) throw new Error('tsconfig.json did not parse');
  const host: ts.LanguageServiceHost = {
    getCompilationSettings: () => config.options,
    getScriptFileNames: () => [fileName],
    getScriptVersion: () => '1',
    getScriptSnapshot: (f) => {
      const content = f === fileName ? text : ts.sys.readFile(f);
      return content === undefined ? undefined : ts.ScriptSnapshot.fromString(content);
    },
    getCurrentDirectory: () => ROOT,
    getDefaultLibFileName: (o) => ts.getDefaultLibFilePath(o),
    fileExists: (f) => f === fileName || ts.sys.fileExists(f),
    readFile: (f) => (f === fileName ? text : ts.sys.readFile(f)),
    readDirectory: ts.sys.readDirectory,
    directoryExists: ts.sys.directoryExists,
    getDirectories: ts.sys.getDirectories,
  };
  return ts.createLanguageService(host, ts.createDocumentRegistry());
}

describe('config key documentation', () => {
  it('src/train/core/config-docs.ts is what scripts/gen-config-docs.ts generates (run npm run gen:config-docs)', () => {
    expect(readFileSync(CONFIG_DOCS_FILE, 'utf8')).toBe(renderConfigDocs());
  });

  it("an editor's hover over a config key shows its help, default and flag; 'sigmod' does not compile", () => {
    const fileName = join(ROOT, 'test', 'train', 'core', '__hover__.ts');
    const text = [
      "import type { DPOConfigInput } from '../../../src/train/dpo/config.js';",
      "export const ok: DPOConfigInput = { model: 'm', data: 'd.jsonl', output: 'o', beta: 0.2, lora: { r: 4 }, lossType: ['sigmoid', 'aot_pair'] };",
      "export const bad: DPOConfigInput = { model: 'm', data: 'd.jsonl', output: 'o', lossType: ['sigmod'] };",
    ].join('\n');
    const ls = service(fileName, text);
    const hover = (word: string): string => {
      const info = ls.getQuickInfoAtPosition(fileName, text.indexOf(word));
      return `${ts.displayPartsToString(info?.displayParts)}\n${ts.displayPartsToString(info?.documentation)}`;
    };
    expect(hover('beta')).toMatch(/beta\?: number/);
    expect(hover('beta')).toContain('DPO temperature beta (strength of the KL constraint). Default: `0.1`. CLI: `--beta`.');
    expect(hover('r: 4')).toContain('LoRA rank');
    expect(hover('r: 4')).toContain('CLI: `--lora-r`.');
    const errors = ls.getSemanticDiagnostics(fileName).map((d) => `${text.slice(0, d.start).split('\n').length}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/^3: Type '"sigmod"' is not assignable/);
  }, 120_000);

  it('lossType is the union of loss names (a type test: `npm run typecheck` fails if sigmod compiles)', () => {
    // @ts-expect-error 'sigmod' is not a loss type
    const bad: DPOConfigInput = { model: 'm', data: 'd.jsonl', output: 'o', lossType: ['sigmod'] };
    const good: DPOConfigInput = { model: 'm', data: 'd.jsonl', output: 'o', lossType: ['sigmoid', 'aot_pair'] };
    expect([bad.lossType, good.lossType]).toEqual([['sigmod'], ['sigmoid', 'aot_pair']]);
  });
});
