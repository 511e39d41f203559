/** `dpo --compile-cache` / `--no-compile-cache <command>`: accepted before or after the command, listed in --help, and only for that run. */
import { describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { COMPILE_CACHE_ENV, compileCacheDir } from '../../src/engine/compile-cache.js';

function io(): { out: () => string; io: Parameters<typeof main>[1] } {
  let text = '';
  const stream = { write: (s: string) => ((text += s), true) };
  return { out: () => text, io: { stdout: stream, stderr: stream } as unknown as Parameters<typeof main>[1] };
}

async function withEnv(value: string | undefined, body: () => Promise<void>): Promise<void> {
  const saved = process.env[COMPILE_CACHE_ENV];
  if (value === undefined) delete process.env[COMPILE_CACHE_ENV];
  else process.env[COMPILE_CACHE_ENV] = value;
  try {
    await body();
  } finally {
    if (saved === undefined) delete process.env[COMPILE_CACHE_ENV];
    else process.env[COMPILE_CACHE_ENV] = saved;
  }
}

describe('dpo --compile-cache / --no-compile-cache', () => {
  it('are global flags, documented; the cache is off unless asked for', async () => {
    const help = io();
    expect(await main(['--help'], help.io)).toBe(0);
    expect(help.out()).toMatch(/--compile-cache\s+keep ONNX Runtime's optimised models/);
    expect(help.out()).toMatch(/--no-compile-cache\s+compile every graph afresh/);
    await withEnv(undefined, async () => expect(compileCacheDir()).toBeUndefined());
  });

  it('leave the environment as it was after the run', async () => {
    for (const flag of ['--no-compile-cache', '--compile-cache']) {
      for (const start of [undefined, '/tmp/somewhere']) {
        await withEnv(start, async () => {
          for (const argv of [[flag, 'models'], ['models', flag]]) {
            const r = io();
            expect(await main(argv, r.io), r.out()).toBe(0);
            expect(process.env[COMPILE_CACHE_ENV]).toBe(start);
          }
        });
      }
    }
  });
});
