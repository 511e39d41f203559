/**
 * The `dpo studio` server without a browser: what it serves (page, bundle, onnxruntime-web's
 * wasm, the model folder's files and nothing else), decoding, label's host and origin checks, and
 * one-line errors for a model folder it cannot serve.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runStudio, SHIPPED_MODEL, type RunningStudio } from '../../src/studio/run.js';
import { runCli } from '../cli/run-cli.js';

function get(url: string, headers: Record<string, string> = {}, body?: string): Promise<{ status: number; headers: Record<string, unknown>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: body === undefined ? 'GET' : 'POST', headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('dpo studio server', () => {
  let studio: RunningStudio;
  beforeAll(async () => {
    studio = await runStudio({ port: 0 });
  }, 60_000);
  afterAll(() => studio?.close());

  it('serves the page, the bundle, the wasm and the model files, and nothing else', async () => {
    const page = await get(studio.url);
    expect(page.status).toBe(200);
    expect(String(page.headers['content-security-policy'])).toContain("script-src 'self' 'wasm-unsafe-eval'");
    expect(page.body.toString()).toContain('brown-gpt2');
    expect((await get(`${studio.url}dpo-browser.js`)).body.toString()).toContain('BrowserDpo = class');
    const wasm = await get(`${studio.url}ort/ort-wasm-simd-threaded.asyncify.wasm`);
    expect([wasm.status, wasm.headers['content-type']]).toEqual([200, 'application/wasm']);
    expect((await get(`${studio.url}model/model.safetensors`)).body.equals(readFileSync(join(SHIPPED_MODEL, 'model.safetensors')))).toBe(true);
    expect((await get(`${studio.url}model/training.json`)).status).toBe(404);
    expect((await get(`${studio.url}model/..%2F..%2Fpackage.json`)).status).toBe(404);
    expect((await get(`${studio.url}ort/../package.json`)).status).toBe(404);
    const session = JSON.parse((await get(`${studio.url}api/session`)).body.toString()) as { prompts: string[]; promptIds: number[][]; files: string[]; lora?: object; full?: boolean; learningRate: number; modelPath: string };
    expect(session.files).toEqual(['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']);
    // LoRA with PEFT's defaults unless --full; the adapter names this folder as its base.
    expect([session.lora, session.full, session.learningRate, session.modelPath]).toEqual([{}, undefined, 1e-3, SHIPPED_MODEL]);
    expect(session.promptIds.length).toBe(session.prompts.length);
  });

  it('decodes token ids for the page, same origin only, and answers only its own host', async () => {
    const json = { 'content-type': 'application/json' };
    const ok = await get(`${studio.url}api/decode`, json, JSON.stringify({ ids: [[464, 3807, 373]] }));
    expect(JSON.parse(ok.body.toString())).toEqual({ texts: ['The movie was'] });
    expect((await get(`${studio.url}api/decode`, { ...json, origin: 'http://evil.example' }, '{"ids": []}')).status).toBe(403);
    expect((await get(`${studio.url}api/decode`, json, '{"ids": [[-1]]}')).status).toBe(400);
    expect((await get(studio.url, { host: 'evil.example' })).status).toBe(421);
  });

  it('refuses, in one line, a folder without config.json or model.safetensors', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dpo-studio-'));
    try {
      await expect(runStudio({ model: dir, port: 0 })).rejects.toThrow(/no config\.json \(give a model folder\)$/);
      writeFileSync(join(dir, 'config.json'), '{}');
      await expect(runStudio({ model: dir, port: 0 })).rejects.toThrow(/no model\.safetensors \(the studio loads one unsharded safetensors file/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses --full with --lora-* flags in one line', async () => {
    const run = await runCli(['studio', '--full', '--lora-r', '4', '--port', '0']);
    expect(run.code).not.toBe(0);
    expect(run.stderr.trim()).toBe('dpo: --full trains every weight: drop the --lora-* flags, or drop --full to train LoRA adapters');
  });
});
