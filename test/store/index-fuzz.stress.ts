// The sidecar fuzz of index-fuzz.test.ts at 1,000 runs over two seeds (npm run test:stress).
import { describe, expect, it } from 'vitest';
import { fuzzIndexFlips } from './index-fuzz';

describe('pack index sidecar fuzz (stress)', () => {
  for (const seed of [11, 12345]) {
    it(`500 single-bit flips, seed ${seed}`, async () => {
      const r = await fuzzIndexFlips(500, seed);
      expect(r.failures).toEqual([]);
      expect(r.attrFailures).toEqual([]);
    });
  }
});
