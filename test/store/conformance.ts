// The ObjectStore conformance suite (STYLE.md section 7): every backend runs
// these tests through a factory. Backend-specific behaviour (files on disk,
// HDF5 interop, processes) lives in the backend's own test file.
import { describe, expect, it } from 'vitest';
import { ChecksumMismatchError, InvalidArgumentError, ObjectNotFoundError } from '../../lib/errors';
import type { ObjectAttrs, ObjectStore, StoredAttrs } from '../../lib/store/object-store';
import { seeded } from './helpers';

export interface StoreHarness {
  store: ObjectStore;
  /** Damages the stored bytes of `id` so that a read must fail verification. */
  corrupt(id: string): Promise<void>;
  /** A fresh store instance over the same data, when the backend persists. */
  reopen?: () => Promise<ObjectStore>;
  cleanup(): Promise<void>;
}

const attrs = (n: number, extra?: Record<string, string>): ObjectAttrs => ({
  codec: 'raw',
  dtype: 'U8',
  shape: [n],
  rawSize: n,
  ...(extra ? { extra } : {}),
});

async function putAll(store: ObjectStore, objs: Array<[string, Uint8Array, ObjectAttrs]>) {
  const tx = store.beginWrite();
  for (const [id, b, a] of objs) await tx.put(id, b, a);
  return tx.commit();
}

async function collect(it: AsyncIterable<StoredAttrs>): Promise<StoredAttrs[]> {
  const out: StoredAttrs[] = [];
  for await (const a of it) out.push(a);
  return out;
}

export function runObjectStoreSuite(name: string, make: () => Promise<StoreHarness>): void {
  const withStore = (fn: (h: StoreHarness) => Promise<void>) => async () => {
    const h = await make();
    try {
      await fn(h);
    } finally {
      await h.store.close();
      await h.cleanup();
    }
  };

  describe(`ObjectStore conformance: ${name}`, () => {
    it(
      'round-trips bytes and attributes, including 0-d, empty and extra attributes',
      withStore(async ({ store }) => {
        const a = seeded(1000, 1);
        const info = await putAll(store, [
          [
            'a1',
            a,
            { codec: 'zstd', dtype: 'F32', shape: [10, 25], base: '', rawSize: 1000, extra: { depth: '0', note: 'ü' } },
          ],
          ['scalar', seeded(4, 2), { codec: 'raw', dtype: 'F32', shape: [], rawSize: 4 }],
          ['empty', new Uint8Array(0), { codec: 'raw', dtype: 'F32', shape: [0, 3], rawSize: 0 }],
          ['delta1', seeded(10, 3), { codec: 'delta', dtype: 'BF16', shape: [5], base: 'a1', rawSize: 10 }],
        ]);
        expect(info).toMatchObject({ objects: 4 });
        const got = await store.get('a1');
        expect(Buffer.from(got.bytes).equals(a)).toBe(true);
        expect(got.attrs).toMatchObject({
          id: 'a1',
          codec: 'zstd',
          dtype: 'F32',
          shape: [10, 25],
          base: '',
          rawSize: 1000,
          storedSize: 1000,
          extra: { depth: '0', note: 'ü' },
        });
        expect(got.attrs.checksum).toMatch(/^[0-9a-f]{32}$/);
        expect((await store.get('scalar')).attrs.shape).toEqual([]);
        const e = await store.get('empty');
        expect(e.bytes.byteLength).toBe(0);
        expect(e.attrs).toMatchObject({ shape: [0, 3], storedSize: 0, rawSize: 0 });
        expect((await store.stat('delta1')).base).toBe('a1');
        expect(await store.has('a1')).toBe(true);
        expect(await store.has('nope')).toBe(false);
      }),
    );

    it(
      'makes writes visible only on commit; abort and empty commits leave nothing',
      withStore(async ({ store }) => {
        const tx = store.beginWrite();
        expect(await tx.put('x1', seeded(100, 5), attrs(100))).toBe(true);
        expect(tx.count).toBe(1);
        expect(await store.has('x1')).toBe(false);
        await expect(store.get('x1')).rejects.toMatchObject({ code: ObjectNotFoundError.code });
        await tx.abort();
        await tx.abort();
        expect(await store.has('x1')).toBe(false);
        await expect(tx.put('x2', seeded(1), attrs(1))).rejects.toBeInstanceOf(InvalidArgumentError);
        expect(await store.beginWrite().commit()).toBeNull();
        const tx2 = store.beginWrite();
        await tx2.put('x1', seeded(100, 5), attrs(100));
        expect(await tx2.commit()).toMatchObject({ objects: 1 });
        await expect(tx2.commit()).rejects.toBeInstanceOf(InvalidArgumentError);
        expect(await store.has('x1')).toBe(true);
      }),
    );

    it(
      'deduplicates ids already stored or staged and reports reuse',
      withStore(async ({ store }) => {
        await putAll(store, [['d1', seeded(64, 1), attrs(64)]]);
        const tx = store.beginWrite();
        expect(await tx.put('d1', seeded(64, 1), attrs(64))).toBe(false);
        expect(await tx.put('d2', seeded(64, 2), attrs(64))).toBe(true);
        expect(await tx.put('d2', seeded(64, 2), attrs(64))).toBe(false);
        expect(await tx.reuse('d1')).toBe(true);
        expect(await tx.reuse('d2')).toBe(true);
        expect(await tx.reuse('zz')).toBe(false);
        expect(tx.count).toBe(1);
        expect(await tx.commit()).toMatchObject({ objects: 1 });
        expect((await collect(store.list())).map((a) => a.id).sort()).toEqual(['d1', 'd2']);
      }),
    );

    it(
      'rejects bad ids and attributes with InvalidArgumentError',
      withStore(async ({ store }) => {
        const tx = store.beginWrite();
        for (const id of ['', '.hidden', 'a/b', 'x'.repeat(129), 'sp ace', 5]) {
          await expect(tx.put(id as string, seeded(1), attrs(1))).rejects.toBeInstanceOf(InvalidArgumentError);
        }
        const bad: Array<Partial<ObjectAttrs>> = [
          { codec: '' },
          { dtype: 7 as unknown as string },
          { shape: [-1] },
          { shape: [1.5] },
          { rawSize: -1 },
          { extra: { checksum: 'x' } },
          { extra: { 'bad name': 'x' } },
          { extra: { ok: 3 as unknown as string } },
          { base: 'a\0b' },
          { id: 'other' },
        ];
        for (const b of bad)
          await expect(tx.put('ok1', seeded(1), { ...attrs(1), ...b })).rejects.toBeInstanceOf(InvalidArgumentError);
        await expect(tx.put('ok1', 'str' as unknown as Uint8Array, attrs(1))).rejects.toBeInstanceOf(
          InvalidArgumentError,
        );
        expect(await tx.commit()).toBeNull();
        await expect(store.get('../x')).rejects.toBeInstanceOf(InvalidArgumentError);
        await expect(store.get('missing')).rejects.toBeInstanceOf(ObjectNotFoundError);
        await expect(store.stat('missing')).rejects.toBeInstanceOf(ObjectNotFoundError);
      }),
    );

    it(
      'never aliases caller buffers',
      withStore(async ({ store }) => {
        const src = seeded(256, 9);
        const copy = Buffer.from(src);
        await putAll(store, [['al', src, attrs(256)]]);
        src.fill(0);
        const got = await store.get('al');
        expect(Buffer.from(got.bytes).equals(copy)).toBe(true);
        got.bytes.fill(1);
        expect(Buffer.from((await store.get('al')).bytes).equals(copy)).toBe(true);
      }),
    );

    it(
      'lists every object once with its attributes',
      withStore(async ({ store }) => {
        const ids = Array.from({ length: 30 }, (_, i) => `obj${i}`);
        await putAll(
          store,
          ids.slice(0, 20).map((id, i) => [id, seeded(i, i + 1), attrs(i)]),
        );
        await putAll(
          store,
          ids.slice(10).map((id, i) => [id, seeded(i + 10, i + 11), attrs(i + 10)]),
        );
        const listed = await collect(store.list());
        expect(listed.map((a) => a.id).sort()).toEqual([...ids].sort());
        for (const a of listed) expect(a.storedSize).toBe(Number(a.id.slice(3)));
      }),
    );

    it(
      'detects corrupted bytes on read with ChecksumMismatchError naming the object',
      withStore(async (h) => {
        await putAll(h.store, [
          ['good', seeded(500, 1), attrs(500)],
          ['victim', seeded(4096, 2), attrs(4096)],
        ]);
        await h.corrupt('victim');
        const err = await h.store.get('victim').then(
          () => null,
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(ChecksumMismatchError);
        expect((err as ChecksumMismatchError).code).toBe(ChecksumMismatchError.code);
        expect((err as Error).message).toContain('victim');
        expect((err as ChecksumMismatchError).data).toMatchObject({ id: 'victim' });
        expect(Buffer.from((await h.store.get('good')).bytes).equals(seeded(500, 1))).toBe(true);
        const problems = await h.store.verify();
        expect(problems.filter((p) => p.kind === 'object')).toEqual([
          expect.objectContaining({ id: 'victim', code: ChecksumMismatchError.code }),
        ]);
      }),
    );

    it(
      'repacks: drops what keep() rejects, keeps the rest readable',
      withStore(async ({ store }) => {
        await putAll(store, [
          ['k1', seeded(100, 1), attrs(100)],
          ['g1', seeded(100, 2), attrs(100)],
        ]);
        await putAll(store, [
          ['k2', seeded(100, 3), attrs(100)],
          ['g2', seeded(100, 4), attrs(100)],
        ]);
        await putAll(store, [['k3', seeded(100, 5), attrs(100)]]);
        const keep = new Set(['k1', 'k2', 'k3']);
        const r = await store.repack((id) => keep.has(id));
        expect(r.dropped).toBe(2);
        expect(await store.has('g1')).toBe(false);
        expect(await store.has('g2')).toBe(false);
        await expect(store.get('g1')).rejects.toBeInstanceOf(ObjectNotFoundError);
        for (const [id, seed] of [
          ['k1', 1],
          ['k2', 3],
          ['k3', 5],
        ] as const)
          expect(Buffer.from((await store.get(id)).bytes).equals(seeded(100, seed))).toBe(true);
        expect(await store.verify()).toEqual([]);
        expect((await store.repack(() => true)).dropped).toBe(0);
      }),
    );

    it(
      'repack spares recently written objects within graceMs',
      withStore(async ({ store }) => {
        await putAll(store, [['fresh', seeded(10, 1), attrs(10)]]);
        const r = await store.repack(() => false, { graceMs: 60_000 });
        expect(r.dropped).toBe(0);
        expect(await store.has('fresh')).toBe(true);
      }),
    );

    it(
      'fails a commit whose reused object was removed meanwhile',
      withStore(async ({ store }) => {
        await putAll(store, [['base1', seeded(10, 1), attrs(10)]]);
        const tx = store.beginWrite();
        expect(await tx.reuse('base1')).toBe(true);
        await tx.put('new1', seeded(10, 2), attrs(10));
        await store.repack((id) => id !== 'base1');
        await expect(tx.commit()).rejects.toMatchObject({ code: ObjectNotFoundError.code, data: { ids: ['base1'] } });
        // The objects it did write were still published.
        expect(await store.has('new1')).toBe(true);
      }),
    );

    it(
      'survives a reopen with every object and attribute',
      withStore(async (h) => {
        if (!h.reopen) return;
        await putAll(h.store, [
          ['p1', seeded(300, 1), attrs(300, { k: 'v' })],
          ['p2', new Uint8Array(0), attrs(0)],
        ]);
        const s2 = await h.reopen();
        try {
          expect(Buffer.from((await s2.get('p1')).bytes).equals(seeded(300, 1))).toBe(true);
          expect((await s2.stat('p1')).extra).toEqual({ k: 'v' });
          expect((await s2.get('p2')).bytes.byteLength).toBe(0);
        } finally {
          await s2.close();
        }
      }),
    );

    // Small and large objects (the local store aggregates objects below 16 KiB into one table
    // per pack; other backends may not distinguish them at all).
    it(
      'stores many tiny objects, including 0-length ones, with their attributes',
      withStore(async (h) => {
        const objs: Array<[string, Uint8Array, ObjectAttrs]> = Array.from({ length: 300 }, (_, i) => [
          `tiny${i}`,
          seeded(i % 5 === 0 ? 0 : (i * 7) % 97, i + 1),
          {
            codec: i % 2 ? 'zstd' : 'raw',
            dtype: 'BF16',
            shape: i % 3 ? [i, 2] : [],
            base: i % 4 ? '' : `tiny${i + 1}`,
            rawSize: i * 4,
            extra: i % 10 ? undefined : { n: String(i), odd: 'a=b&c+d%' },
          },
        ]);
        expect(await putAll(h.store, objs)).toMatchObject({ objects: 300 });
        const check = async (store: ObjectStore) => {
          const listed = new Map((await collect(store.list())).map((a) => [a.id, a]));
          expect(listed.size).toBe(300);
          for (const [id, b, a] of objs) {
            const got = await store.get(id);
            expect(Buffer.from(got.bytes).equals(Buffer.from(b)), id).toBe(true);
            const want = {
              id,
              codec: a.codec,
              dtype: a.dtype,
              shape: a.shape,
              base: a.base,
              rawSize: a.rawSize,
              storedSize: b.byteLength,
              extra: a.extra ?? {},
            };
            expect(got.attrs).toMatchObject(want);
            expect(listed.get(id)).toMatchObject(want);
          }
        };
        await check(h.store);
        if (h.reopen) {
          const s2 = await h.reopen();
          try {
            await check(s2);
          } finally {
            await s2.close();
          }
        }
      }),
    );

    it(
      'mixes small and large objects around the aggregation bound in one transaction',
      withStore(async ({ store }) => {
        // Around the old bound (16 KiB) and the default one (1 MiB, where LocalPackStore's small objects end).
        const sizes = [0, 1, 4095, 16383, 16384, 16385, 100_000, (1 << 20) - 1, 1 << 20, (1 << 20) + 3];
        const objs = sizes.map(
          (n, i) => [`mix${i}`, seeded(n, 50 + i), attrs(n, { size: String(n) })] as [string, Uint8Array, ObjectAttrs],
        );
        await putAll(store, objs);
        for (const [id, b] of objs) {
          const got = await store.get(id);
          expect(Buffer.from(got.bytes).equals(Buffer.from(b)), id).toBe(true);
          expect(got.attrs).toMatchObject({ storedSize: b.byteLength, extra: { size: String(b.byteLength) } });
          expect((await store.stat(id)).checksum).toBe(got.attrs.checksum);
        }
        expect(await store.verify()).toEqual([]);
      }),
    );

    it(
      'detects a damaged tiny object among its neighbours, naming it',
      withStore(async (h) => {
        const objs = Array.from(
          { length: 20 },
          (_, i) => [`nb${i}`, seeded(10 + i, i + 1), attrs(10 + i)] as [string, Uint8Array, ObjectAttrs],
        );
        await putAll(h.store, objs);
        await h.corrupt('nb7');
        const err = await h.store.get('nb7').then(
          () => null,
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(ChecksumMismatchError);
        expect((err as Error).message).toContain('nb7');
        expect((err as ChecksumMismatchError).data).toMatchObject({ id: 'nb7' });
        for (const [id, b] of objs)
          if (id !== 'nb7') expect(Buffer.from((await h.store.get(id)).bytes).equals(Buffer.from(b)), id).toBe(true);
        expect((await h.store.verify()).filter((p) => p.kind === 'object')).toEqual([
          expect.objectContaining({ id: 'nb7', code: ChecksumMismatchError.code }),
        ]);
      }),
    );

    it(
      'repacks packs of mixed small and large objects',
      withStore(async ({ store }) => {
        const mk = (i: number, n: number) =>
          [`rp${i}`, seeded(n, i + 1), attrs(n, { i: String(i) })] as [string, Uint8Array, ObjectAttrs];
        const a = [mk(0, 0), mk(1, 10), mk(2, 20_000), mk(3, 300)];
        const b = [mk(4, 5000), mk(5, 70_000), mk(6, 0), mk(7, 1)];
        await putAll(store, a);
        await putAll(store, b);
        const keep = new Set(['rp0', 'rp2', 'rp4', 'rp7', 'rp6']);
        const r = await store.repack((id) => keep.has(id));
        expect(r.dropped).toBe(3);
        for (const [id, bytes, at] of [...a, ...b]) {
          if (!keep.has(id)) {
            expect(await store.has(id)).toBe(false);
            continue;
          }
          const got = await store.get(id);
          expect(Buffer.from(got.bytes).equals(Buffer.from(bytes)), id).toBe(true);
          expect(got.attrs.extra).toEqual(at.extra);
        }
        expect(await store.verify()).toEqual([]);
        expect((await collect(store.list())).map((x) => x.id).sort()).toEqual([...keep].sort());
      }),
    );

    it(
      'refuses use after close',
      withStore(async ({ store }) => {
        await store.close();
        await expect(store.get('a')).rejects.toBeInstanceOf(InvalidArgumentError);
        expect(() => store.beginWrite()).toThrow(InvalidArgumentError);
      }),
    );
  });
}
