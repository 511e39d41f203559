/**
 * The browser build of dpo-ts (src/browser/index.ts) as one ES module. In a published package
 * it is prebuilt (`npm run build` writes dist/browser/dpo-browser.js); from a source checkout
 * it is built on demand with esbuild (a devDependency). The build swaps the Node ONNX Runtime
 * platform (engine/ort-platform.ts) for the browser one (ort-platform.browser.ts) and fails on
 * any import of a Node module: the library's browser layers need none.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DpoError } from '../errors.js';

/** The package root (this file is src/studio/bundle.ts or dist/studio/bundle.js). */
export const PACKAGE_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BROWSER_ENTRY = join(PACKAGE_ROOT, 'src', 'browser', 'index.ts');
export const PREBUILT_BUNDLE = join(PACKAGE_ROOT, 'dist', 'browser', 'dpo-browser.js');

export interface BrowserBundle {
  code: string;
  /** Every source file in the bundle (paths relative to the package root). */
  inputs: string[];
}

/** Builds the bundle with esbuild (of `entry`, default the browser entry); `outfile` also writes it there. */
export async function buildBrowserBundle(options: { outfile?: string; entry?: string } = {}): Promise<BrowserBundle> {
  const { outfile, entry = BROWSER_ENTRY } = options;
  let esbuild: typeof import('esbuild');
  try {
    esbuild = await import('esbuild');
  } catch {
    throw new DpoError('the browser bundle is not built (dist/browser/dpo-browser.js) and esbuild is not installed to build it: run npm run build in a dpo-ts checkout');
  }
  const result = await esbuild.build({
    entryPoints: [entry],
    absWorkingDir: PACKAGE_ROOT,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    write: false,
    metafile: true,
    minify: false,
    logLevel: 'silent',
    ...(outfile ? { outfile } : { outdir: 'out' }),
    plugins: [
      {
        name: 'dpo-browser-platform',
        setup(build) {
          build.onResolve({ filter: /\/ort-platform\.js$/ }, (args) => ({ path: join(args.resolveDir, dirname(args.path), 'ort-platform.browser.ts') }));
          build.onResolve({ filter: /^(node:|onnxruntime-node$)/ }, (args) => ({
            errors: [{ text: `${args.path} is imported by ${relative(PACKAGE_ROOT, args.importer)}: the browser build must not import Node modules` }],
          }));
        },
      },
    ],
  }).catch((e: Error & { errors?: { text: string }[] }) => {
    throw new DpoError(`browser bundle: ${e.errors?.map((x) => x.text).join('; ') ?? e.message}`);
  });
  const file = result.outputFiles.find((f) => f.path.endsWith('.js')) ?? result.outputFiles[0];
  if (outfile) {
    const { mkdir, writeFile } = await import('node:fs/promises');
    await mkdir(dirname(outfile), { recursive: true });
    await writeFile(outfile, file.contents);
  }
  return { code: file.text, inputs: Object.keys(result.metafile.inputs) };
}

let cached: Promise<string> | undefined;
/** The bundle's code: built from source in a checkout (src/ beside an esbuild install), else the prebuilt file. */
export function browserBundle(): Promise<string> {
  cached ??= (async () => {
    const fromSource = import.meta.url.endsWith('.ts') || !existsSync(PREBUILT_BUNDLE);
    return fromSource ? (await buildBrowserBundle()).code : readFile(PREBUILT_BUNDLE, 'utf8');
  })();
  return cached;
}

/** onnxruntime-web's dist folder (its .wasm files, which the page fetches). */
export function ortWebDist(): string {
  return dirname(createRequire(import.meta.url).resolve('onnxruntime-web/ort-wasm-simd-threaded.wasm'));
}
