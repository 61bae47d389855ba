// SHA-256 in native code (kernels/sha256.h through the host's OpenSSL): the raw Sha256 binding,
// and OrderedSha256 (lib/hash.ts), which feeds it pieces in order from the pool and gathers small
// pieces, against node:crypto; also its node:crypto fallback.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { OrderedSha256 } from '../../lib/hash';
import { native } from '../../lib/native';
import { seeded } from '../store/helpers';

const hex = (parts: Uint8Array[]) => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest('hex');
};

describe('native Sha256', () => {
  it('is available under Node and matches node:crypto; refuses overlapping and late calls', async () => {
    expect(native.sha256Available()).toBe(true);
    const h = new native.Sha256();
    const a = seeded((3 << 20) + 5, 1);
    const first = h.updateAsync(a);
    expect(() => h.updateAsync(a)).toThrow(/previous call/);
    await first;
    await h.updateAsync(new Uint8Array(0));
    expect(h.digestHex()).toBe(hex([a]));
    expect(() => h.digestHex()).toThrow(/already digested/);
    expect(new native.Sha256().digestHex()).toBe(hex([]));
  });
});

describe('OrderedSha256', () => {
  // Small pieces (gathered), pieces that straddle the batch size, and large ones, unawaited.
  const pieces = () => [
    seeded(10, 2),
    seeded(300_000, 3),
    seeded(4 << 20, 4),
    seeded(1, 5),
    ...Array.from({ length: 20 }, (_, i) => seeded(100_000 + i, 6 + i)),
    seeded((1 << 20) + 3, 30),
    new Uint8Array(0),
    seeded(7, 31),
  ];
  for (const nat of [true, false])
    it(`hashes pieces in order (${nat ? 'native' : 'node:crypto'})`, async () => {
      const h = new OrderedSha256({ native: nat });
      const ps = pieces();
      await Promise.all(ps.map((p) => h.update(p)));
      expect(await h.digest()).toBe(hex(ps));
    });
});
