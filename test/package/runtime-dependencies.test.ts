/**
 * What the published package needs at run time is declared in package.json `dependencies`: every
 * package that src/ imports (statically, with import(), or through require) must be there, not
 * only in devDependencies, or `npm install dpo-ts` gives a CLI that fails on first use.
 * (scripts/check-package.sh goes further: npm pack, install the tarball, run the CLI.)
 */
import { readdirSync, readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..');
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  name: string;
  dependencies: Record<string, string>;
  files: string[];
  bin: Record<string, string>;
};

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sourceFiles(join(dir, e.name)) : e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') ? [join(dir, e.name)] : [],
  );
}

/** Package name of a bare specifier: 'a/b' -> 'a', '@s/a/b' -> '@s/a'. */
function packageOf(specifier: string): string {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
}

/** Bare module specifiers a file loads at run time (type-only imports are erased and skipped). */
export function runtimeImports(source: string): string[] {
  const code = source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
  const found: string[] = [];
  const patterns = [
    /^\s*(?:import|export)\s+(?!type\s)(?:[^'"]*?\sfrom\s+)?['"]([^'"]+)['"]/gm,
    /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g,
    /\brequire\(\s*['"]([^'"]+)['"]\s*\)/g,
    /createRequire\([^)]*\)\(\s*['"]([^'"]+)['"]\s*\)/g,
  ];
  for (const re of patterns) for (const m of code.matchAll(re)) found.push(m[1]);
  // '/x.js': a URL the browser page loads from our server, not a package.
  return found.filter((s) => !s.startsWith('.') && !s.startsWith('/') && !s.startsWith('node:') && !builtinModules.includes(s));
}

/**
 * Imports a published package never reaches: `dpo studio` builds its browser bundle with esbuild only
 * when it runs from source in a checkout; the package ships the prebuilt dist/browser/dpo-browser.js
 * (the test below checks that `files` ships dist, and the build writes the bundle there).
 */
const CHECKOUT_ONLY: Record<string, readonly string[]> = { 'src/studio/bundle.ts': ['esbuild'] };

describe('the published package', () => {
  it('finds imports of every kind (the scanner itself)', () => {
    const src = [
      "import { a } from 'alpha';",
      "import type { T } from 'typeonly';",
      "export { b } from '@scope/beta/sub';",
      "import 'side-effect';",
      "const c = await import('gamma');",
      "const d = createRequire(import.meta.url)('delta');",
      "import { readFile } from 'node:fs/promises';",
      "import { x } from './local.js';",
      "// import { z } from 'commented';",
    ].join('\n');
    expect(runtimeImports(src).map(packageOf).sort()).toEqual(['@scope/beta', 'alpha', 'delta', 'gamma', 'side-effect']);
  });

  it('declares every package src/ imports at run time in dependencies', () => {
    const missing: string[] = [];
    for (const file of sourceFiles(join(ROOT, 'src'))) {
      for (const spec of runtimeImports(readFileSync(file, 'utf8'))) {
        const name = packageOf(spec);
        if (CHECKOUT_ONLY[relative(ROOT, file)]?.includes(name)) continue;
        if (name !== pkg.name && !(name in pkg.dependencies)) missing.push(`${relative(ROOT, file)}: ${spec}`);
      }
    }
    expect(missing).toEqual([]);
  });

  it('ships what the CLI needs: dist, bin and the quickstart model', () => {
    expect(pkg.files).toEqual(expect.arrayContaining(['dist', 'bin', 'assets']));
    expect(pkg.bin.dpo).toBe('./bin/dpo.js');
  });
});
