/** The reference log-prob cache is checksummed: a damaged file of the right size is recomputed. */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { PreferenceBatch } from '../../src/data/collate.js';
import { computeReferenceLogps } from '../../src/scoring/reference-cache.js';
import type { Scorer } from '../../src/scoring/scorer.js';
import { tempDir } from '../train/helpers.js';

describe('reference log-prob cache', () => {
  it('reuses an intact file and recomputes one whose bytes changed at the same size', async () => {
    let calls = 0;
    const scorer = {
      score: async (batch: PreferenceBatch) => {
        calls++;
        return { logps: Float64Array.from({ length: batch.numSequences }, (_, i) => -1 - i) };
      },
    } as unknown as Scorer;
    const rows = [1, 2, 3].map((n) => ({ promptIds: [n], completionIds: [[n, 5], [n, 6]], origin: { file: 'm', line: n } }));
    const dir = tempDir('dpo-ts-ref-');
    const o = { scorer, weights: new Map(), shapes: new Map(), rows, batchSize: 8, padTokenId: 0, cache: { dir, weightsDigest: 'w' } };
    const first = await computeReferenceLogps(o);
    expect(first.fromCache).toBe(false);
    expect(calls).toBe(1);
    const again = await computeReferenceLogps(o);
    expect(again.fromCache).toBe(true);
    expect(Array.from(again.logps)).toEqual(Array.from(first.logps));
    expect(calls).toBe(1);

    const file = join(dir, 'reference', readdirSync(join(dir, 'reference'))[0]);
    const bytes = readFileSync(file);
    bytes[3] ^= 0x10;
    writeFileSync(file, bytes);
    const recomputed = await computeReferenceLogps(o);
    expect(recomputed.fromCache).toBe(false);
    expect(calls).toBe(2);
    expect(Array.from(recomputed.logps)).toEqual(Array.from(first.logps));
    expect((await computeReferenceLogps(o)).fromCache).toBe(true);
  });
});
