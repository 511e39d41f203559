/**
 * The exported folder in a browser: transformers.js' browser build on onnxruntime-web (wasm),
 * in Debian's chromium, served from 127.0.0.1 with no network. Its logits must match dpo-ts's
 * within 1e-4 and its greedy generation token for token. Skipped without chromium.
 */
import { createServer, type Server } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { extname, join, normalize } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportOnnx } from '../../src/export/index.js';
import { Generator } from '../../src/generate/generator.js';
import { CHROMIUM, launchChromium, warnIfNoChromium } from '../browser.js';
import { loadFixture, MODEL_FIXTURES } from '../generate/helpers.js';
import { caseFeeds, compileFullForward, readCases, type FixtureCase } from '../models/fixture-harness.js';
import type { HostTensor } from '../../src/engine/runtime.js';

warnIfNoChromium('test/export/browser.test.ts');

const NODE_MODULES = join(import.meta.dirname, '..', '..', 'node_modules');
const TYPES: Record<string, string> = { '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm', '.json': 'application/json' };
const FAMILIES = ['gpt2', 'llama'];
const NEW_TOKENS = 8;
/** The page loads transformers.js' browser build and sets it up: no remote models, wasm from /ort/. */
const PAGE_SCRIPT = `import * as t from '/lib/transformers.js';
t.env.allowRemoteModels = false;
t.env.allowLocalModels = true; // off by default in browsers
t.env.localModelPath = '/models/';
t.env.backends.onnx.wasm.wasmPaths = '/ort/';
t.env.backends.onnx.wasm.numThreads = 1;
globalThis.transformers = t;`;

/** Static files under URL prefixes; "/" is an empty page to run scripts in. */
function serve(roots: Record<string, string>): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    void (async () => {
      const path = decodeURIComponent((req.url ?? '/').split('?')[0]);
      if (path === '/') {
        res.writeHead(200, { 'content-type': 'text/html' });
        res.end(`<!doctype html><title>export test</title><script type="module">${PAGE_SCRIPT}</script>`);
        return;
      }
      for (const [prefix, dir] of Object.entries(roots)) {
        const rel = normalize(path.slice(prefix.length));
        if (!path.startsWith(prefix) || rel.startsWith('..')) continue;
        const body = await readFile(join(dir, rel)).catch(() => undefined);
        if (!body) break;
        res.writeHead(200, { 'content-type': TYPES[extname(path)] ?? 'application/octet-stream' });
        res.end(body);
        return;
      }
      res.writeHead(404);
      res.end();
    })();
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, url: `http://127.0.0.1:${(server.address() as { port: number }).port}/` })));
}

interface BrowserResult {
  logits: number[];
  dims: number[];
  generated: number[];
}

describe.skipIf(!CHROMIUM)('an export runs in a browser (transformers.js on onnxruntime-web)', () => {
  let browser: Browser;
  let page: Page;
  let served: { server: Server; url: string };
  const root = mkdtempSync(join(tmpdir(), 'dpo-export-web-'));
  beforeAll(async () => {
    for (const f of FAMILIES) await exportOnnx({ model: join(MODEL_FIXTURES, f), output: join(root, f) });
    served = await serve({
      '/lib/': join(NODE_MODULES, '@huggingface', 'transformers', 'dist'),
      '/ort/': join(NODE_MODULES, 'onnxruntime-web', 'dist'),
      '/models/': root,
    });
    browser = await launchChromium();
    // One page for every model: the wasm runtime is compiled once.
    page = await browser.newPage();
    await page.goto(served.url);
    await page.waitForFunction(() => 'transformers' in globalThis);
  });
  afterAll(async () => {
    await browser?.close();
    served?.server.close();
    rmSync(root, { recursive: true, force: true });
  });

  for (const family of FAMILIES) {
    it(`${family}: logits within 1e-4, greedy generation token for token`, async () => {
      const c = readCases(family).find((x) => x.name === 'len17_left_pad') as FixtureCase;
      const prompt = [3, 7, 1, 9, 4, 2];
      // Runs in the page, with the module the page loaded (the test's own code is transformed
      // by vitest, so it cannot import() there itself).
      const result: BrowserResult = await page.evaluate(
        async ({ name, ids, mask, prompt, newTokens }) => {
          // eslint-disable-next-line @typescript-eslint/no-explicit-any
          const t = (globalThis as any).transformers;
          const model = await t.AutoModelForCausalLM.from_pretrained(name, { dtype: 'fp32', device: 'wasm' });
          const int64 = (rows: number[][]): unknown => new t.Tensor('int64', BigInt64Array.from(rows.flat().map(BigInt)), [rows.length, rows[0].length]);
          const out = await model({ input_ids: int64(ids), attention_mask: int64(mask) });
          const generated = await model.generate({ input_ids: int64([prompt]), max_new_tokens: newTokens, do_sample: false });
          return { logits: Array.from(out.logits.data as Float32Array), dims: out.logits.dims as number[], generated: (generated.tolist() as bigint[][])[0].map(Number) };
        },
        { name: family, ids: c.input_ids, mask: c.attention_mask, prompt, newTokens: NEW_TOKENS },
      );

      const { model, weights } = await loadFixture(family);
      const feeds: Record<string, HostTensor> = {};
      for (const p of model.parameters()) feeds[p.name] = { data: weights.get(p.name) as Float32Array, dims: p.shape };
      const forward = await compileFullForward(model, 1);
      const ours = (await forward.run({ ...feeds, ...caseFeeds(c) })).logits;
      await forward.release();
      expect(result.dims).toEqual(ours.dims);
      const v = model.config.vocabSize;
      const t = c.input_ids[0].length;
      let err = 0;
      c.attention_mask.forEach((row, i) => row.forEach((m, j) => {
        if (m) for (let k = (i * t + j) * v; k < (i * t + j + 1) * v; k++) err = Math.max(err, Math.abs(result.logits[k] - (ours.data[k] as number)));
      }));
      expect(err).toBeLessThan(1e-4);

      const generator = await Generator.create(model, { runtime: { threads: 1 } });
      const eos = model.config.eosTokenId;
      const { sequences } = await generator.generateIds(weights, [prompt], { maxNewTokens: NEW_TOKENS, eosTokenIds: eos === undefined ? [] : [eos].flat() });
      await generator.release();
      expect(result.generated.slice(prompt.length)).toEqual(sequences[0][0].tokenIds);
    });
  }
});
