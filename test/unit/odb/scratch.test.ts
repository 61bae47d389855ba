// ScratchBuffers (lib/odb/scratch.ts) and the ObjectReader's scratch path: reads and decodes of
// large objects go into reused buffers, results stay byte-exact, and a lent buffer is never
// handed out twice.
import * as fs from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { ObjectReader, ObjectWriter } from '../../../lib/odb/objects';
import { ScratchBuffers, SCRATCH_MIN_BYTES } from '../../../lib/odb/scratch';
import { LocalPackStore } from '../../../lib/store/local';
import { tensor } from '../../../lib/tensor/tensor';
import { seeded, tmpDir } from '../../store/helpers';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

const MiB = 1 << 20;

describe('ScratchBuffers', () => {
  it('lends a buffer once, reuses it after give, and ignores foreign or small buffers', () => {
    const s = new ScratchBuffers();
    const a = s.take(6 * MiB);
    const b = s.take(6 * MiB);
    expect(a.buffer).not.toBe(b.buffer);
    expect(s.lends(a)).toBe(true);
    expect(s.give(a)).toBe(true);
    expect(s.lends(a)).toBe(false);
    const c = s.take(5 * MiB); // fits in a's buffer (no more than twice the need)
    expect(c.buffer).toBe(a.buffer);
    expect(c.byteLength).toBe(5 * MiB);
    // Giving `a` back again is a no-op (still ours: the caller must not recycle it), and never
    // returns the buffer `c` now holds.
    expect(s.give(a)).toBe(true);
    expect(s.lends(c)).toBe(true);
    expect(s.take(5 * MiB).buffer).not.toBe(c.buffer);
    expect(s.give(new Uint8Array(8 * MiB))).toBe(false);
    const small = s.take(SCRATCH_MIN_BYTES - 1);
    expect(small.byteLength).toBe(SCRATCH_MIN_BYTES - 1);
    expect(s.give(small)).toBe(false);
    // Too big for a buffer (more than twice the need plus slack): a new one.
    expect(s.give(c)).toBe(true);
    const d = s.take(2 * MiB + SCRATCH_MIN_BYTES);
    expect(d.buffer).not.toBe(b.buffer);
    s.give(b);
    s.give(d);
    s.close();
    // After close, a buffer given back goes to the native pool (detached), not to the free list.
    const e = new ScratchBuffers();
    const f = e.take(6 * MiB);
    e.close();
    expect(e.give(f)).toBe(true);
    expect(f.byteLength).toBe(0);
  });

  it('places a shifted view that many bytes past a page boundary, and keeps 16 MiB ones for reuse', () => {
    const s = new ScratchBuffers();
    const a = s.take(16 * MiB, 1234);
    expect(a.byteLength).toBe(16 * MiB);
    expect(a.byteOffset).toBe(1234); // pooled buffers start their ArrayBuffer, page aligned
    expect(a.buffer.byteLength).toBeGreaterThanOrEqual(16 * MiB + 1234);
    a.fill(5);
    expect(s.give(a)).toBe(true);
    expect(a.byteLength).toBe(16 * MiB); // kept (not detached), though a page over 16 MiB
    // Reused for another shift, and for no shift at all.
    const b = s.take(16 * MiB, 4095);
    expect(b.buffer).toBe(a.buffer);
    expect(b.byteOffset).toBe(4095);
    s.give(b);
    const c = s.take(16 * MiB);
    expect(c.buffer).toBe(a.buffer);
    expect(c.byteOffset).toBe(0);
    s.give(c);
    // An unshifted 16 MiB buffer has no room for a shifted view: a new one.
    const d = new ScratchBuffers();
    const e = d.take(16 * MiB);
    d.give(e);
    expect(d.take(16 * MiB, 8).buffer).not.toBe(e.buffer);
    s.close();
    d.close();
  });

  it('keeps buffers from SCRATCH_MIN_BYTES up; below the pooled size it drops the shift', () => {
    const s = new ScratchBuffers();
    expect(SCRATCH_MIN_BYTES).toBeLessThan(1 * MiB);
    const a = s.take(1 * MiB, 1234);
    expect(a.byteLength).toBe(1 * MiB);
    expect(a.byteOffset).toBe(0); // not page aligned: nothing to place
    a.fill(7);
    expect(s.give(a)).toBe(true);
    const b = s.take(MiB - 100); // the same buffer, lent again
    expect(b.buffer).toBe(a.buffer);
    expect(s.lends(b)).toBe(true);
    expect(s.take(MiB).buffer).not.toBe(b.buffer); // lent: never handed out twice
    // Kept small buffers are never given to the native pool: still whole after close.
    expect(s.give(b)).toBe(true);
    s.close();
    expect(a.byteLength).toBe(1 * MiB);
  });

  it('bounds the bytes it keeps', () => {
    const s = new ScratchBuffers(10 * MiB);
    const xs = [s.take(6 * MiB), s.take(6 * MiB)];
    for (const x of xs) s.give(x);
    // The oldest went back to the native pool (detached) when the second came back.
    expect(xs[0].byteLength).toBe(0);
    expect(xs[1].byteLength).toBe(6 * MiB);
    s.close();
  });
});

describe('ObjectReader with scratch buffers', () => {
  // Pooled (page-aligned) buffers, and smaller plain ones (a model of many small tensors).
  for (const n of [6 * MiB, 512 << 10])
    it(`decodes a delta chain of ${n >> 10} KiB tensors byte-exact into reused buffers`, async () => {
      const d = tmpDir('scratch');
      dirs.push(d);
      const store = await LocalPackStore.open(d, { fsync: false });
      const v1 = Buffer.from(seeded(n, 7));
      const v2 = Buffer.from(v1);
      for (let i = 0; i < n; i += 4099) v2[i] ^= 0x5a;
      const w = new ObjectWriter(store, new ObjectReader(store), { level: 3, maxChainDepth: 8 });
      const r1 = await w.put(tensor('U8', [n], v1));
      await w.flush();
      const r2 = await w.put(tensor('U8', [n], v2), { id: r1.id });
      await w.flush();
      expect(r2.base).toBe(r1.id);

      const reader = new ObjectReader(store);
      const seen = new Set<ArrayBufferLike>();
      class Counting extends ScratchBuffers {
        override take(k: number): Uint8Array {
          const v = super.take(k);
          seen.add(v.buffer);
          return v;
        }
      }
      const scratch = new Counting();
      const t2 = await reader.tensor(r2.id, { cacheBases: false, scratch });
      expect(Buffer.from(t2.data).equals(v2)).toBe(true);
      reader.release(t2, scratch);
      expect(t2.data.byteLength).toBe(n); // given to the scratch, not detached
      const t1 = await reader.tensor(r1.id, { cacheBases: false, scratch });
      expect(Buffer.from(t1.data).equals(v1)).toBe(true);
      reader.release(t1, scratch);
      const again = await reader.tensor(r2.id, { cacheBases: false, scratch });
      expect(Buffer.from(again.data).equals(v2)).toBe(true);
      reader.release(again, scratch);
      // Ten reads and decodes; at most four buffers are in use at once (two links, each read + decoded).
      expect(seen.size).toBeLessThanOrEqual(4);
      scratch.close();
      // With the cache on, scratch is not used: the cached base must not live in a lent buffer.
      const cached = new ObjectReader(store);
      const s2 = new ScratchBuffers();
      const c2 = await cached.tensor(r2.id, { scratch: s2 });
      expect(Buffer.from(c2.data).equals(v2)).toBe(true);
      expect(s2.give(c2.data)).toBe(false);
      s2.close();
      await store.close();
    });
});
