// One flipped bit in a .idx sidecar (seeded, 60 runs here; 1,000 in
// index-fuzz.stress.ts): every object of the intact pack reads back with its
// bytes and attributes (issue #11).
import { describe, expect, it } from 'vitest';
import { fuzzIndexFlips } from './index-fuzz';

describe('pack index sidecar fuzz', () => {
  it('60 single-bit flips: never "not found", never wrong bytes or attributes', async () => {
    const r = await fuzzIndexFlips(60, 7);
    expect(r.failures).toEqual([]);
    expect(r.attrFailures).toEqual([]);
  });
});
