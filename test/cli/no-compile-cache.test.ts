/** `dpo --no-compile-cache <command>`: accepted before or after the command, listed in --help, and only for that run. */
import { describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { COMPILE_CACHE_ENV } from '../../src/engine/compile-cache.js';

function io(): { out: () => string; io: Parameters<typeof main>[1] } {
  let text = '';
  const stream = { write: (s: string) => ((text += s), true) };
  return { out: () => text, io: { stdout: stream, stderr: stream } as unknown as Parameters<typeof main>[1] };
}

describe('dpo --no-compile-cache', () => {
  it('is a global flag, documented, that leaves the environment as it was', async () => {
    const help = io();
    expect(await main(['--help'], help.io)).toBe(0);
    expect(help.out()).toMatch(/--no-compile-cache\s+compile every graph afresh/);
    const saved = process.env[COMPILE_CACHE_ENV];
    process.env[COMPILE_CACHE_ENV] = '/tmp/somewhere';
    try {
      for (const argv of [['--no-compile-cache', 'models'], ['models', '--no-compile-cache']]) {
        const r = io();
        expect(await main(argv, r.io), r.out()).toBe(0);
        expect(process.env[COMPILE_CACHE_ENV]).toBe('/tmp/somewhere');
      }
    } finally {
      if (saved === undefined) delete process.env[COMPILE_CACHE_ENV];
      else process.env[COMPILE_CACHE_ENV] = saved;
    }
  });
});
