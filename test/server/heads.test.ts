// Series heads (lib/server/ingest/heads.ts): the server's cache of the decoded delta bases the next
// upload of each series asks for. Bounded in bytes, replaced per series, reference counted so a head
// being read is never given back to the buffer pool, and given back at once when nobody reads it.
import { describe, expect, it } from 'vitest';
import { allocLarge } from '../../lib/native';
import { HeadReader, SeriesHeads } from '../../lib/server/ingest/heads';
import type { ObjectStore } from '../../lib/store/object-store';
import { tensor, type Tensor } from '../../lib/tensor/tensor';

const MiB = 1 << 20;

/** A tensor over a pooled buffer (4 MiB and up: allocLarge), filled with `fill`. */
function big(mib: number, fill: number): Tensor {
  const b = allocLarge(mib * MiB);
  b.fill(fill);
  return tensor('U8', [b.byteLength], b);
}

/** A pooled buffer given back to the pool is detached: its views read as empty. */
const freed = (t: Tensor) => t.data.byteLength === 0;

describe('SeriesHeads', () => {
  it('a new version replaces its series head; the old one is freed once its last reader gives it back', () => {
    const h = new SeriesHeads(64 * MiB);
    const v0 = big(4, 1);
    expect(h.install('r', 'm.safetensors', 'w', 'id0', v0)).toBe(true);
    h.give(v0); // the installer is done with it
    expect(h.bytes).toBe(4 * MiB);
    // An upload takes v0 as its base, and its new version v1 replaces it meanwhile.
    const base = h.take('id0');
    expect(base).toBe(v0);
    const v1 = big(4, 2);
    expect(h.install('r', 'm.safetensors', 'w', 'id1', v1)).toBe(true);
    expect(h.bytes).toBe(4 * MiB);
    expect(h.take('id0')).toBeUndefined();
    expect(freed(v0)).toBe(false); // still read by the upload
    h.give(v0);
    expect(freed(v0)).toBe(true);
    expect(h.take('id1')).toBe(v1);
    h.give(v1);
    h.give(v1);
    expect(freed(v1)).toBe(false); // the head itself stays
    expect(h.stats).toMatchObject({ hits: 2, misses: 1, installed: 2 });
  });

  it('stays within its budget: pushes out heads of other files, never those of its own file', () => {
    const h = new SeriesHeads(12 * MiB);
    const a = [big(4, 1), big(4, 2)];
    a.forEach((t, i) => {
      expect(h.install('r', 'a', `w${i}`, `a${i}`, t)).toBe(true);
      h.give(t);
    });
    const b = [big(4, 3), big(4, 4), big(4, 5)];
    expect(h.install('r', 'b', 'w0', 'b0', b[0])).toBe(true);
    h.give(b[0]);
    // Full: the next head of file b pushes out the least recently used head of file a.
    h.give(h.take('a0')!);
    expect(h.install('r', 'b', 'w1', 'b1', b[1])).toBe(true);
    h.give(b[1]);
    expect(freed(a[1])).toBe(true);
    expect(h.take('a1')).toBeUndefined();
    // The last head of a goes for b's third tensor; then b is full of itself and refuses a fourth.
    expect(h.install('r', 'b', 'w2', 'b2', b[2])).toBe(true);
    h.give(b[2]);
    expect(freed(a[0])).toBe(true);
    const b3 = big(4, 6);
    expect(h.install('r', 'b', 'w3', 'b3', b3)).toBe(false);
    expect(freed(b3)).toBe(false); // refused: not ours, the caller keeps it
    expect(h.bytes).toBe(12 * MiB);
    expect(h.stats.refused).toBe(1);
    // A tensor larger than the whole budget pushes nothing out.
    expect(h.install('r', 'c', 'w', 'c0', big(16, 7))).toBe(false);
    for (const [i, t] of b.entries()) expect(h.take(`b${i}`)).toBe(t);
  });
});

describe('HeadReader', () => {
  const store = {} as ObjectStore; // never read: every lookup below is answered by the heads

  it('answers from the heads, ignores the pipeline releasing its own adopted tensors, and close() gives every reference back', async () => {
    const h = new SeriesHeads(64 * MiB);
    const v0 = big(4, 1);
    h.install('r', 'p', 'w', 'id0', v0);
    h.give(v0);
    const up = new HeadReader(store, h);
    const base = await up.tensor('id0');
    expect(base).toBe(v0);
    // The upload's new version becomes the head; the pipeline releases it (twice, as ingestLayout does).
    const v1 = big(4, 2);
    expect(up.adopt('r', 'p', 'w', 'id1', v1)).toBe(true);
    up.release(v1);
    up.release(v1);
    expect(freed(v1)).toBe(false);
    // The upload fails before it releases its base: close() does, and the replaced head is freed.
    expect(freed(v0)).toBe(false);
    up.close();
    expect(freed(v0)).toBe(true);
    expect(freed(v1)).toBe(false);
    // A second upload replaces v1 while it reads it; v1 goes when that upload closes.
    const up2 = new HeadReader(store, h);
    expect(await up2.tensor('id1')).toBe(v1);
    const v2 = big(4, 3);
    expect(up2.adopt('r', 'p', 'w', 'id2', v2)).toBe(true);
    up2.release(v1);
    expect(freed(v1)).toBe(true);
    up2.close();
    expect(freed(v2)).toBe(false);
    expect(h.bytes).toBe(4 * MiB);
  });

  it('a tensor that did not become a head is released to the pool as usual', () => {
    const h = new SeriesHeads(4 * MiB);
    const up = new HeadReader(store, h);
    const t = big(8, 1);
    expect(up.adopt('r', 'p', 'w', 'x', t)).toBe(false);
    up.release(t);
    expect(freed(t)).toBe(true);
  });
});
