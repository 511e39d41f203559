/** Append handles for LabelStore tests: node's own, with a delay or a full disk put in front of writes. */
import { open } from 'node:fs/promises';
import type { OpenRowFile } from '../../src/label/store.js';

/** node's append handle, with `before` run ahead of each write: it may wait, throw, or return how many bytes to write. */
export function appendWith(before: (bytes: Uint8Array, offset: number, length: number) => Promise<number | undefined>): OpenRowFile {
  return async (path) => {
    const handle = await open(path, 'a');
    return {
      stat: () => handle.stat(),
      sync: () => handle.sync(),
      truncate: (n) => handle.truncate(n),
      close: () => handle.close(),
      write: async (bytes, offset, length) => {
        const take = await before(bytes, offset, length);
        return handle.write(bytes, offset, take ?? length);
      },
    };
  };
}

/**
 * A disk that is full while `isFull()`: like a real one with a few bytes left, a write takes half
 * the row and the next one fails with ENOSPC.
 */
export function fullDisk(isFull: () => boolean): OpenRowFile {
  let writes = 0;
  return appendWith(async (_bytes, _offset, length) => {
    if (!isFull()) return undefined;
    if (writes++ % 2 === 0) return Math.floor(length / 2);
    throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
  });
}
