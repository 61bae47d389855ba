// LocalPackStore: the conformance suite plus what only a disk backend has --
// files and indexes, HDF5 interop (h5dump, h5py), damage, index rebuild,
// repack against a concurrent reader, and large objects.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ChecksumMismatchError, CorruptObjectError, ObjectNotFoundError } from '../../lib/errors';
import { native } from '../../lib/native';
import { LocalPackStore } from '../../lib/store/local';
import { INDEX_MAGIC, indexText, parseIndex } from '../../lib/store/pack-index';
import type { ObjectAttrs } from '../../lib/store/object-store';
import { runObjectStoreSuite } from './conformance';
import { HAS_H5DUMP, HAS_H5PY, python, seeded, tmpDir } from './helpers';

/** Flips one byte of an object's data inside its pack file. */
function corruptOnDisk(store: LocalPackStore, pack: string, id: string, at = 0): void {
  const r = new native.PackReader(store.packPath(pack));
  const e = r.stat(id);
  r.close();
  if (e.offset === null) throw new Error('object has no data to corrupt');
  const fd = fs.openSync(store.packPath(pack), 'r+');
  try {
    const b = Buffer.alloc(1);
    fs.readSync(fd, b, 0, 1, e.offset + at);
    b[0] ^= 0x40;
    fs.writeSync(fd, b, 0, 1, e.offset + at);
  } finally {
    fs.closeSync(fd);
  }
}

// Both object layouts: small objects aggregated into /small (default) and one dataset per object.
for (const [label, smallObjectMax] of [
  ['small objects aggregated', undefined],
  ['one dataset per object', 0],
] as const) {
  runObjectStoreSuite(`LocalPackStore (${label})`, async () => {
    const dir = tmpDir('store');
    const store = await LocalPackStore.open(dir, { smallObjectMax });
    return {
      store,
      corrupt: async (id: string) =>
        corruptOnDisk(store, (await store.stat(id)).location!, id, Math.min(7, (await store.stat(id)).storedSize - 1)),
      reopen: () => LocalPackStore.open(dir, { smallObjectMax }),
      cleanup: async () => fs.rmSync(dir, { recursive: true, force: true }),
    };
  });
}

const u8 = (n: number, extra?: Record<string, string>): ObjectAttrs => ({
  codec: 'raw',
  dtype: 'U8',
  shape: [n],
  rawSize: n,
  extra,
});

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = tmpDir('local');
  try {
    await fn(dir);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

describe('LocalPackStore on disk', () => {
  it('publishes pack + index under objects/packs and leaves tmp/ empty', () =>
    withDir(async (dir) => {
      const s = await LocalPackStore.open(dir);
      const tx = s.beginWrite();
      await tx.put('aa', seeded(10), u8(10));
      const info = (await tx.commit())!;
      expect(info.name).toMatch(/^pack-[0-9a-f]{32}\.h5$/);
      const files = fs.readdirSync(path.join(dir, 'objects', 'packs')).sort();
      expect(files).toEqual([info.name.replace('.h5', '.idx'), info.name].sort());
      expect(fs.readdirSync(path.join(dir, 'tmp'))).toEqual([]);
      expect(fs.statSync(path.join(dir, 'objects', 'packs', info.name)).size).toBe(info.bytes);
      const raw = fs.readFileSync(path.join(dir, 'objects', 'packs', info.name.replace('.h5', '.idx')));
      expect(raw.subarray(0, 4).equals(INDEX_MAGIC)).toBe(true);
      const idx = JSON.parse(indexText(raw)!);
      expect(idx).toMatchObject({ format: 'coral-pack-index-2', pack: info.name, packSize: info.bytes });
      expect(idx.objects[0]).toEqual([
        'aa',
        '/small/data0',
        10,
        expect.any(Number),
        native.xxh3_128(seeded(10)),
        'raw',
        'U8',
        [10],
        '',
        10,
        {},
      ]);
      await s.close();
    }));

  it('round-trips an object larger than 64 MiB through a fresh instance', () =>
    withDir(async (dir) => {
      const big = seeded((64 << 20) + 12345, 77);
      const s = await LocalPackStore.open(dir);
      const tx = s.beginWrite();
      await tx.put('big', big, u8(big.length));
      await tx.put('small', seeded(3), u8(3));
      await tx.commit();
      await s.close();
      const s2 = await LocalPackStore.open(dir);
      const got = await s2.get('big');
      expect(got.bytes.byteLength).toBe(big.length);
      expect(Buffer.compare(Buffer.from(got.bytes.buffer, got.bytes.byteOffset, got.bytes.byteLength), big)).toBe(0);
      expect(got.attrs.checksum).toBe(native.xxh3_128(big));
      await s2.close();
    }));

  it.skipIf(!HAS_H5DUMP)('h5dump shows large objects as datasets with attributes and small ones as table rows', () =>
    withDir(async (dir) => {
      // A bound below 20 000 bytes, so that this pack has both kinds (by default objects below 1 MiB are small).
      const s = await LocalPackStore.open(dir, { smallObjectMax: 16384 });
      const big = seeded(20_000, 3);
      const tx = s.beginWrite();
      await tx.put('0123abcd', big, {
        codec: 'zstd',
        dtype: 'BF16',
        shape: [100, 100],
        base: 'feed',
        rawSize: 20_000,
        extra: { depth: '1' },
      });
      await tx.put('scalar0', seeded(2, 4), { codec: 'raw', dtype: 'F16', shape: [], rawSize: 2 });
      await tx.put('tiny1', seeded(64, 5), {
        codec: 'zstd',
        dtype: 'F32',
        shape: [4, 4],
        base: 'feed',
        rawSize: 64,
        extra: { depth: '2' },
      });
      const info = (await tx.commit())!;
      const tx2 = s.beginWrite();
      await tx2.put('second', seeded(5, 5), u8(5));
      await tx2.commit();
      for (const pack of s.packNames()) {
        const header = execFileSync('h5dump', ['-H', s.packPath(pack)], { encoding: 'utf8' });
        expect(header).toContain('GROUP "objects"');
        expect(header).toContain('GROUP "small"');
        expect(header).toContain('DATASET "index"');
      }
      const p = s.packPath(info.name);
      const h = execFileSync('h5dump', ['-H', p], { encoding: 'utf8' });
      expect(h).toMatch(/DATASET "0123abcd"[\s\S]*DATASPACE\s+SIMPLE \{ \( 20000 \) \/ \( 20000 \) \}/);
      // The small objects' bytes: one part (data0) holds all 66 of them.
      expect(h).toMatch(/DATASET "data0"[\s\S]*H5T_STD_U8LE[\s\S]*DATASPACE\s+SIMPLE \{ \( 66 \) \/ \( 66 \) \}/);
      expect(h).not.toContain('DATASET "data1"');
      expect(h).not.toContain('DATASET "data"');
      for (const field of [
        '"id"',
        '"part"',
        '"offset"',
        '"size"',
        '"checksum"',
        '"codec"',
        '"dtype"',
        '"shape"',
        '"base"',
        '"rawSize"',
        '"extra"',
      ])
        expect(h).toContain(field);
      const a = execFileSync('h5dump', ['-A', p], { encoding: 'utf8' });
      expect(a).toContain('"coral-pack-3"');
      for (const needle of [
        'ATTRIBUTE "codec"',
        '"zstd"',
        '"BF16"',
        '"feed"',
        'ATTRIBUTE "rawSize"',
        'ATTRIBUTE "checksum"',
        'ATTRIBUTE "depth"',
      ])
        expect(a).toContain(needle);
      expect(a).toContain(`"${native.xxh3_128(big)}"`);
      // The table rows, as h5dump prints them.
      const t = execFileSync('h5dump', ['-d', '/small/index', p], { encoding: 'utf8' });
      for (const needle of [
        '"scalar0"',
        '"tiny1"',
        `"${native.xxh3_128(seeded(64, 5))}"`,
        '"4,4"',
        '"depth=2"',
        '"F16"',
      ])
        expect(t).toContain(needle);
      // The stored bytes, as h5dump prints them, are the objects' bytes.
      const out = path.join(dir, 'dump.bin');
      execFileSync('h5dump', ['-d', '/objects/0123abcd', '-b', 'LE', '-o', out, p], { stdio: 'pipe' });
      expect(fs.readFileSync(out).equals(big)).toBe(true);
      execFileSync('h5dump', ['-d', '/small/data0', '-b', 'LE', '-o', out, p], { stdio: 'pipe' });
      expect(fs.readFileSync(out).equals(Buffer.concat([seeded(2, 4), seeded(64, 5)]))).toBe(true);
      await s.close();
    }),
  );

  it.skipIf(!HAS_H5PY)('h5py reads objects, the small table and attributes without coral', () =>
    withDir(async (dir) => {
      const s = await LocalPackStore.open(dir);
      const data = seeded(1 << 20, 11);
      const tx = s.beginWrite();
      await tx.put('pyobj', data, {
        codec: 'zstd',
        dtype: 'F32',
        shape: [512, 512],
        base: '',
        rawSize: 1 << 20,
        extra: { depth: '0' },
      });
      await tx.put('pyscalar', seeded(8, 1), { codec: 'raw', dtype: 'F64', shape: [], rawSize: 8 });
      await tx.put('pyempty', new Uint8Array(0), { codec: 'raw', dtype: 'F32', shape: [0], rawSize: 0 });
      await tx.put('pysmall', seeded(3000, 2), {
        codec: 'zstd',
        dtype: 'BF16',
        shape: [3, 500],
        base: 'pyobj',
        rawSize: 3000,
        extra: { depth: '1', note: 'a=b&c+d ü' },
      });
      const info = (await tx.commit())!;
      const out = python(
        `
import sys, json, hashlib, urllib.parse, h5py
f = h5py.File(sys.argv[1], 'r')
def s(v):  # coral writes fixed-length UTF-8 strings; h5py returns them as bytes
    return v.decode('utf-8') if isinstance(v, bytes) else (None if v is None else str(v))
res = {'format': s(f.attrs['format']), 'count': int(f.attrs['objectCount']), 'objects': {}}
for name, ds in f['objects'].items():
    a = ds.attrs
    res['objects'][name] = dict(id=s(a['id']), codec=s(a['codec']), dtype=s(a['dtype']), shape=[int(x) for x in a['shape']],
        base=s(a['base']), rawSize=int(a['rawSize']), checksum=s(a['checksum']), extra={'depth': s(a.get('depth'))},
        sha=hashlib.sha256(ds[()].tobytes()).hexdigest(), n=int(ds.shape[0]), dt=str(ds.dtype))
for row in f['small/index'][()]:
    part = f['small/data%d' % row['part']]  # the row's bytes are at 'offset' inside its part
    o, n = int(row['offset']), int(row['size'])
    shape = s(row['shape'])
    res['objects'][s(row['id'])] = dict(id=s(row['id']), codec=s(row['codec']), dtype=s(row['dtype']),
        shape=[int(x) for x in shape.split(',')] if shape else [], base=s(row['base']), rawSize=int(row['rawSize']),
        checksum=s(row['checksum']), extra=dict(urllib.parse.parse_qsl(s(row['extra']), keep_blank_values=True)),
        sha=hashlib.sha256(part[o:o + n].tobytes()).hexdigest(), n=n, dt=str(part.dtype), part=part.name)
print(json.dumps(res))`,
        [s.packPath(info.name)],
      );
      const res = JSON.parse(out);
      const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
      expect(res.format).toBe('coral-pack-3');
      expect(res.count).toBe(4);
      expect(res.objects.pyobj).toEqual({
        id: 'pyobj',
        codec: 'zstd',
        dtype: 'F32',
        shape: [512, 512],
        base: '',
        rawSize: 1 << 20,
        checksum: native.xxh3_128(data),
        extra: { depth: '0' },
        sha: sha(data),
        n: 1 << 20,
        dt: 'uint8',
      });
      expect(res.objects.pysmall).toEqual({
        id: 'pysmall',
        codec: 'zstd',
        dtype: 'BF16',
        shape: [3, 500],
        base: 'pyobj',
        rawSize: 3000,
        checksum: native.xxh3_128(seeded(3000, 2)),
        extra: { depth: '1', note: 'a=b&c+d ü' },
        sha: sha(seeded(3000, 2)),
        n: 3000,
        dt: 'uint8',
        part: '/small/data0',
      });
      expect(res.objects.pyscalar.shape).toEqual([]);
      expect(res.objects.pyempty).toMatchObject({
        n: 0,
        shape: [0],
        sha: sha(new Uint8Array(0)),
        part: '/small/data0',
      });
      await s.close();
    }),
  );

  it('reads a store written before small-object aggregation (coral-pack-1, JSON index)', () =>
    withDir(async (dir) => {
      const fixtures = path.join(__dirname, 'fixtures', 'pack-v1');
      const packs = path.join(dir, 'objects', 'packs');
      fs.mkdirSync(packs, { recursive: true });
      for (const f of fs.readdirSync(fixtures)) fs.copyFileSync(path.join(fixtures, f), path.join(packs, f));
      const idxName = fs.readdirSync(packs).find((f) => f.endsWith('.idx'))!;
      const oldIdx = fs.readFileSync(path.join(packs, idxName));
      expect(oldIdx.toString('utf8')).toMatch(/^\{"format":"coral-pack-index-1"/);
      const want: Array<[string, Buffer, Partial<ObjectAttrs>]> = [
        [
          'legacy_small',
          seeded(100, 1),
          { codec: 'zstd', dtype: 'F32', shape: [5, 5], base: '', rawSize: 100, extra: { depth: '0' } },
        ],
        ['legacy_mid', seeded(5000, 2), { codec: 'raw', dtype: 'U8', shape: [5000], rawSize: 5000, extra: {} }],
        ['legacy_scalar', seeded(4, 3), { codec: 'raw', dtype: 'F32', shape: [], rawSize: 4 }],
        ['legacy_empty', Buffer.alloc(0), { codec: 'raw', dtype: 'F32', shape: [0, 3], rawSize: 0 }],
        [
          'legacy_delta',
          seeded(30, 4),
          { codec: 'delta', dtype: 'BF16', shape: [15], base: 'legacy_small', rawSize: 30 },
        ],
      ];
      const s = await LocalPackStore.open(dir);
      const check = async () => {
        for (const [id, bytes, a] of want) {
          const got = await s.get(id);
          expect(Buffer.from(got.bytes).equals(bytes), id).toBe(true);
          expect(got.attrs).toMatchObject({ ...a, storedSize: bytes.length });
        }
      };
      await check();
      const r = new native.PackReader(s.packPath(s.packNames()[0]));
      expect(r.meta().format).toBe('coral-pack-1');
      const listed = await r.list();
      r.close();
      expect(listed.every((e) => e.dataset === `/objects/${e.id}`)).toBe(true);
      // The JSON index is used as is (verify finds it consistent), and a rebuild writes the compact format.
      expect(parseIndex(oldIdx, s.packNames()[0], fs.statSync(s.packPath(s.packNames()[0])).size)).toEqual(listed);
      expect(await s.verify()).toEqual([]);
      expect(await s.rebuildIndex()).toMatchObject({ packs: 1, objects: 5, problems: [] });
      const newIdx = fs.readFileSync(path.join(packs, idxName));
      expect(newIdx.subarray(0, 4).equals(INDEX_MAGIC)).toBe(true);
      expect(newIdx.length).toBeLessThan(oldIdx.length / 2);
      await check();
      // New objects join the same store; repack moves legacy objects into a coral-pack-3 pack.
      const tx = s.beginWrite();
      await tx.put('fresh', seeded(10, 9), u8(10));
      await tx.commit();
      const rp = await s.repack((id) => id !== 'legacy_mid', { all: true });
      expect(rp).toMatchObject({ dropped: 1 });
      const rr = new native.PackReader(s.packPath(rp.newPack!.name));
      expect(rr.meta().format).toBe('coral-pack-3');
      expect((await rr.list()).filter((e) => e.id.startsWith('legacy_')).map((e) => [e.id, e.dataset])).toEqual([
        ['legacy_delta', '/small/data0'],
        ['legacy_empty', '/small/data0'],
        ['legacy_scalar', '/small/data0'],
        ['legacy_small', '/small/data0'],
      ]);
      rr.close();
      want.splice(1, 1);
      await check();
      expect(await s.verify()).toEqual([]);
      await s.close();
    }));

  it('reads a store written with coral-pack-2 (one /small/data, no part column)', () =>
    withDir(async (dir) => {
      // Written by the last build before coral-pack-3, with smallObjectMax 16384: v2_large has a dataset,
      // the others are rows of /small/index with their bytes in the single /small/data.
      const fixtures = path.join(__dirname, 'fixtures', 'pack-v2');
      const packs = path.join(dir, 'objects', 'packs');
      fs.mkdirSync(packs, { recursive: true });
      for (const f of fs.readdirSync(fixtures)) fs.copyFileSync(path.join(fixtures, f), path.join(packs, f));
      const name = fs.readdirSync(packs).find((f) => f.endsWith('.h5'))!;
      const idxFile = path.join(packs, name.replace(/\.h5$/, '.idx'));
      const oldIdx = fs.readFileSync(idxFile);
      const want: Array<[string, Buffer, Partial<ObjectAttrs>, string]> = [
        [
          'v2_delta',
          seeded(30, 4),
          { codec: 'delta', dtype: 'BF16', shape: [15], base: 'v2_small', rawSize: 30 },
          '/small/data',
        ],
        ['v2_empty', Buffer.alloc(0), { codec: 'raw', dtype: 'F32', shape: [0, 3], rawSize: 0 }, '/small/data'],
        [
          'v2_large',
          seeded(20_000, 1),
          { codec: 'zstd', dtype: 'F32', shape: [50, 100], base: '', rawSize: 20_000, extra: { depth: '0' } },
          '/objects/v2_large',
        ],
        ['v2_scalar', seeded(4, 3), { codec: 'raw', dtype: 'F32', shape: [], rawSize: 4 }, '/small/data'],
        [
          'v2_small',
          seeded(3000, 2),
          { codec: 'raw', dtype: 'U8', shape: [3000], rawSize: 3000, extra: { note: 'a=b&c ü' } },
          '/small/data',
        ],
      ];
      const s = await LocalPackStore.open(dir);
      const check = async () => {
        for (const [id, bytes, a] of want) {
          const got = await s.get(id);
          expect(Buffer.from(got.bytes).equals(bytes), id).toBe(true);
          expect(got.attrs).toMatchObject({ ...a, storedSize: bytes.length, checksum: native.xxh3_128(bytes) });
        }
      };
      await check();
      const r = new native.PackReader(s.packPath(name));
      expect(r.meta().format).toBe('coral-pack-2');
      const listed = await r.list();
      expect(listed.map((e) => [e.id, e.dataset])).toEqual(want.map(([id, , , ds]) => [id, ds]));
      // Offsets are file offsets, for the rows of /small/data as for the dataset.
      const file = fs.readFileSync(s.packPath(name));
      for (const [id, bytes] of want) {
        const e = listed.find((x) => x.id === id)!;
        if (bytes.length === 0) expect(e.offset).toBeNull();
        else expect(file.subarray(e.offset!, e.offset! + bytes.length).equals(bytes), id).toBe(true);
        expect(r.readSync(id).equals(bytes), id).toBe(true);
      }
      r.close();
      // Its index (written by that build) agrees with the pack, and a rebuild writes it again byte for byte.
      expect(parseIndex(oldIdx, name, file.length)).toEqual(listed);
      expect(await s.verify()).toEqual([]);
      expect(await s.rebuildIndex()).toMatchObject({ packs: 1, objects: 5, problems: [] });
      expect(fs.readFileSync(idxFile).equals(oldIdx)).toBe(true);
      // New objects join the same store; a repack moves everything into one coral-pack-3 pack, where each
      // object below the default 1 MiB is small.
      const tx = s.beginWrite();
      await tx.put('v3_fresh', seeded(10, 9), u8(10));
      await tx.commit();
      const rp = await s.repack(() => true, { all: true });
      expect(rp).toMatchObject({ copied: 6, dropped: 0 });
      expect(rp.removedPacks).toContain(name);
      const rr = new native.PackReader(s.packPath(rp.newPack!.name));
      expect(rr.meta().format).toBe('coral-pack-3');
      expect((await rr.list()).map((e) => [e.id, e.dataset])).toEqual(
        [...want.map(([id]) => id), 'v3_fresh'].map((id) => [id, '/small/data0']),
      );
      rr.close();
      await check();
      expect(await s.verify()).toEqual([]);
      await s.close();
    }));

  it.skipIf(!HAS_H5PY)('reads a pack written by h5py from the documented format', () =>
    withDir(async (dir) => {
      const s = await LocalPackStore.open(dir);
      const data = seeded(4096, 21);
      const name = 'pack-' + 'ab'.repeat(16) + '.h5';
      const src = path.join(dir, 'src.bin');
      fs.writeFileSync(src, data);
      // Fixed-length (not variable-length) strings on purpose: readers must accept both.
      python(
        `
import sys, numpy as np, h5py
data = np.fromfile(sys.argv[2], dtype=np.uint8)
with h5py.File(sys.argv[1], 'w', libver=('v108', 'latest')) as f:
    f.attrs['format'] = np.bytes_('coral-pack-1')
    f.attrs['created'] = '2025-01-01T00:00:00.000Z'
    g = f.create_group('objects')
    d = g.create_dataset('frompy', data=data)
    d.attrs['id'] = np.bytes_('frompy'); d.attrs['codec'] = 'raw'; d.attrs['dtype'] = 'U8'
    d.attrs['shape'] = np.array([4096], dtype=np.int64); d.attrs['base'] = ''
    d.attrs['rawSize'] = np.uint64(4096); d.attrs['checksum'] = sys.argv[3]; d.attrs['note'] = 'py'
`,
        [s.packPath(name), src, native.xxh3_128(data)],
      );
      await s.refresh();
      const got = await s.get('frompy');
      expect(Buffer.from(got.bytes).equals(data)).toBe(true);
      expect(got.attrs).toMatchObject({ codec: 'raw', shape: [4096], rawSize: 4096, extra: { note: 'py' } });
      await s.close();
    }),
  );

  it.skipIf(!HAS_H5PY)('rejects hostile small-object tables with typed errors', () =>
    withDir(async (dir) => {
      // Packs built with h5py following the documented layout, each with one defect.
      const cases: Record<string, string> = {
        ok: '',
        offsetPastData: "rows[1]['offset'] = 95",
        hugeSize: "rows[0]['size'] = 2**32 - 1",
        duplicateId: "rows[1]['id'] = b'a0'",
        badId: "rows[0]['id'] = b'../x'",
        badShape: "rows[0]['shape'] = b'1,,2'",
        badExtra: "rows[0]['extra'] = b'bad name=1'",
        badEscape: "rows[0]['extra'] = b'k=%G1'",
        countMismatch: "f.attrs['objectCount'] = np.uint64(5)",
        alsoDataset: "f['objects'].create_dataset('a0', data=np.zeros(3, np.uint8))",
        noIndex: "post:del f['small/index']",
        indexNotCompound: "post:del f['small/index']; f['small'].create_dataset('index', data=np.zeros(2, np.uint64))",
        missingField: "rows = rows[['id', 'offset', 'size', 'codec', 'dtype', 'shape', 'base', 'rawSize', 'extra']]",
        negative:
          "rows = rows.astype([(n, (np.int64 if n in ('offset','size','rawSize') else rows.dtype[n])) for n in rows.dtype.names]); rows[0]['offset'] = -1",
        vlenStrings:
          "rows = rows.astype([(n, (h5py.string_dtype() if n == 'codec' else rows.dtype[n])) for n in rows.dtype.names])",
        dataNot1D: "del f['small/data']; f['small'].create_dataset('data', data=np.zeros((10, 10), np.uint8))",
        chunkedData:
          "del f['small/data']; f['small'].create_dataset('data', data=np.zeros(100, np.uint8), chunks=(10,))",
      };
      const script = `
import sys, json, numpy as np, h5py
path, defect, ck0, ck1 = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
data = bytes(range(100))
dt = [('id', 'S8'), ('offset', '<u4'), ('size', '<u4'), ('checksum', 'S33'), ('codec', 'S4'), ('dtype', 'S3'),
      ('shape', 'S8'), ('base', 'S2'), ('rawSize', '<u8'), ('extra', 'S16')]
rows = np.zeros(2, dtype=dt)
for i, (o, n) in enumerate([(0, 60), (60, 40)]):
    rows[i] = (b'a%d' % i, o, n, [ck0, ck1][i].encode(), b'raw', b'U8', str(n).encode(), b'', n, b'k=v')
with h5py.File(path, 'w', libver=('v108', 'latest')) as f:
    f.attrs['format'] = np.bytes_('coral-pack-2')
    f.attrs['objectCount'] = np.uint64(2)
    f.create_group('objects')
    g = f.create_group('small')
    g.create_dataset('data', data=np.frombuffer(data, np.uint8))
    if not defect.startswith('post:'):
        exec(defect)
    g.create_dataset('index', data=rows)
    if defect.startswith('post:'):
        exec(defect[5:])
`;
      const data = Buffer.from(Array.from({ length: 100 }, (_, i) => i));
      const cks = [native.xxh3_128(data.subarray(0, 60)), native.xxh3_128(data.subarray(60))];
      for (const [name, defect] of Object.entries(cases)) {
        const p = path.join(dir, `hostile-${name}.h5`);
        python(script, [p, defect, ...cks]);
        let code = 'ok';
        try {
          const r = new native.PackReader(p);
          const list = await r.list();
          const read = list.map((e) => r.readSync(e.id));
          r.stat('a0');
          r.close();
          if (name === 'ok') {
            // A coral-pack-2 table (no part column): both rows name the single /small/data.
            expect(list.map((e) => [e.id, e.size, e.extra, e.dataset])).toEqual([
              ['a0', 60, { k: 'v' }, '/small/data'],
              ['a1', 40, { k: 'v' }, '/small/data'],
            ]);
            expect(Buffer.concat(read).equals(data)).toBe(true);
          }
        } catch (e) {
          code = (e as { code: string }).code;
        }
        expect([name, code]).toEqual([name, name === 'ok' ? 'ok' : 'CORAL_CORRUPT_OBJECT']);
      }
    }),
  );

  it.skipIf(!HAS_H5PY)('rejects coral-pack-3 tables whose part column or parts are wrong, with typed errors', () =>
    withDir(async (dir) => {
      // Packs built with h5py following the documented coral-pack-3 layout: a0 (60 bytes) in /small/data0,
      // a1 (40 bytes) in /small/data1, each at offset 0 of its part; each case has one defect.
      const cases: Record<string, string> = {
        ok: '',
        noPartColumn: "rows = rows[[n for n in rows.dtype.names if n != 'part']]",
        missingPart: "post:del f['small/data1']",
        missingFirstPart: "post:del f['small/data0']",
        // Two rows cannot fill three parts, whether or not the part is there.
        partPastRows: "g.create_dataset('data2', data=np.frombuffer(data[60:], np.uint8)); rows[1]['part'] = 2",
        hugePart: "rows[1]['part'] = 2**32 - 1",
        negativePart:
          "rows = rows.astype([(n, (np.int64 if n == 'part' else rows.dtype[n])) for n in rows.dtype.names]); rows[1]['part'] = -1",
        // Offsets are inside the row's own part: a1 at offset 1 runs past data1's 40 bytes, a0 does not fit data1.
        offsetPastPart: "rows[1]['offset'] = 1",
        wrongPart: "rows[0]['part'] = 1",
        partNot1D: "post:del f['small/data1']; f['small'].create_dataset('data1', data=np.zeros((4, 10), np.uint8))",
        chunkedPart:
          "post:del f['small/data1']; f['small'].create_dataset('data1', data=np.frombuffer(data[60:], np.uint8), chunks=(10,))",
        // The same file labelled coral-pack-2: that format's single /small/data is not there.
        labelledPack2: "post:f.attrs['format'] = np.bytes_('coral-pack-2')",
      };
      // What each error names (so that a case fails for its own defect, not an incidental one).
      const why: Record<string, RegExp> = {
        noPartColumn: /no field part/,
        missingPart: /cannot open \/small\/data1/,
        missingFirstPart: /cannot open \/small\/data0/,
        partPastRows: /part past its rows/,
        hugePart: /part past its rows/,
        negativePart: /part is negative/,
        offsetPastPart: /object a1\) lies outside \/small\/data1/,
        wrongPart: /object a0\) lies outside \/small\/data1/,
        partNot1D: /\/small\/data1 is not a 1-D byte dataset/,
        chunkedPart: /\/small\/data1 is not contiguous/,
        labelledPack2: /cannot open \/small\/data /,
      };
      const script = `
import sys, numpy as np, h5py
path, defect, ck0, ck1 = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
data = bytes(range(100))
dt = [('id', 'S8'), ('part', '<u4'), ('offset', '<u4'), ('size', '<u4'), ('checksum', 'S33'), ('codec', 'S4'),
      ('dtype', 'S3'), ('shape', 'S8'), ('base', 'S2'), ('rawSize', '<u8'), ('extra', 'S16')]
rows = np.zeros(2, dtype=dt)
for i, (k, n) in enumerate([(0, 60), (1, 40)]):
    rows[i] = (b'a%d' % i, k, 0, n, [ck0, ck1][i].encode(), b'raw', b'U8', str(n).encode(), b'', n, b'k=v')
with h5py.File(path, 'w', libver=('v108', 'latest')) as f:
    f.attrs['format'] = np.bytes_('coral-pack-3')
    f.attrs['objectCount'] = np.uint64(2)
    f.create_group('objects')
    g = f.create_group('small')
    g.create_dataset('data0', data=np.frombuffer(data[:60], np.uint8))
    g.create_dataset('data1', data=np.frombuffer(data[60:], np.uint8))
    if not defect.startswith('post:'):
        exec(defect)
    g.create_dataset('index', data=rows)
    if defect.startswith('post:'):
        exec(defect[5:])
`;
      const data = Buffer.from(Array.from({ length: 100 }, (_, i) => i));
      const cks = [native.xxh3_128(data.subarray(0, 60)), native.xxh3_128(data.subarray(60))];
      for (const [name, defect] of Object.entries(cases)) {
        const p = path.join(dir, `hostile3-${name}.h5`);
        python(script, [p, defect, ...cks]);
        let err: { code?: string; message: string } | null = null;
        try {
          const r = new native.PackReader(p);
          const list = await r.list();
          const read = list.map((e) => r.readSync(e.id));
          r.close();
          if (name === 'ok') {
            expect(list.map((e) => [e.id, e.size, e.dataset])).toEqual([
              ['a0', 60, '/small/data0'],
              ['a1', 40, '/small/data1'],
            ]);
            expect(Buffer.concat(read).equals(data)).toBe(true);
            // Offsets are file offsets: each row's part's offset plus the row's offset in it.
            const file = fs.readFileSync(p);
            for (const [i, e] of list.entries())
              expect(file.subarray(e.offset!, e.offset! + e.size).equals(read[i])).toBe(true);
          }
        } catch (e) {
          err = e as { code?: string; message: string };
        }
        if (name === 'ok') expect(err, err?.message).toBeNull();
        else {
          expect([name, err?.code], err?.message).toEqual([name, CorruptObjectError.code]);
          expect(err?.message, name).toMatch(why[name]);
        }
      }
    }),
  );

  it('detects a flipped data byte: typed error naming the object, store otherwise usable', () =>
    withDir(async (dir) => {
      const s = await LocalPackStore.open(dir);
      const tx = s.beginWrite();
      const big = seeded(3 << 20, 5); // async read path
      await tx.put('bigvictim', big, u8(big.length));
      await tx.put('bystander', seeded(100, 6), u8(100));
      const info = (await tx.commit())!;
      corruptOnDisk(s, info.name, 'bigvictim', (2 << 20) + 17);
      const s2 = await LocalPackStore.open(dir);
      const err = await s2.get('bigvictim').then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(ChecksumMismatchError);
      expect((err as Error).message).toContain('bigvictim');
      expect((err as Error).message).toContain(info.name);
      expect((err as ChecksumMismatchError).data).toMatchObject({ id: 'bigvictim', pack: info.name });
      expect((await s2.get('bystander')).bytes.byteLength).toBe(100);
      const problems = await s2.verify();
      expect(problems).toEqual([
        expect.objectContaining({ kind: 'object', id: 'bigvictim', pack: info.name, code: ChecksumMismatchError.code }),
      ]);
      await s.close();
      await s2.close();
    }));

  it('turns a truncated or garbage pack into typed errors, never a crash', () =>
    withDir(async (dir) => {
      const s = await LocalPackStore.open(dir);
      const tx = s.beginWrite();
      await tx.put('t1', seeded(200_000, 1), u8(200_000));
      await tx.put('t2', seeded(10, 2), u8(10));
      const info = (await tx.commit())!;
      const tx2 = s.beginWrite();
      await tx2.put('ok', seeded(10, 3), u8(10));
      await tx2.commit();
      await s.close();
      const p = path.join(dir, 'objects', 'packs', info.name);
      fs.truncateSync(p, Math.floor(info.bytes / 2));
      // With its index the pack is still mapped; reading it fails cleanly.
      const s2 = await LocalPackStore.open(dir);
      await expect(s2.get('t1')).rejects.toBeInstanceOf(CorruptObjectError);
      await expect(s2.get('t1')).rejects.toThrow(info.name);
      expect(Buffer.from((await s2.get('ok')).bytes).equals(seeded(10, 3))).toBe(true);
      const problems = await s2.verify();
      expect(problems).toEqual([
        expect.objectContaining({ kind: 'pack', pack: info.name, code: CorruptObjectError.code }),
      ]);
      await s2.close();
      // Without its index, the pack is skipped at open and reported.
      fs.unlinkSync(p.replace(/\.h5$/, '.idx'));
      const s3 = await LocalPackStore.open(dir);
      expect(await s3.has('t1')).toBe(false);
      expect(s3.brokenPacks().map((b) => b.pack)).toEqual([info.name]);
      await expect(s3.get('t1')).rejects.toBeInstanceOf(ObjectNotFoundError);
      await expect(s3.get('t1')).rejects.toThrow(info.name);
      const rb = await s3.rebuildIndex();
      expect(rb.problems).toEqual([expect.objectContaining({ pack: info.name, code: CorruptObjectError.code })]);
      await s3.close();
      // Garbage and zero-length files named like packs.
      for (const content of [
        '',
        'not hdf5 at all',
        Buffer.concat([fs.readFileSync(p).subarray(0, 8), Buffer.alloc(5000, 0xff)]),
      ]) {
        fs.writeFileSync(p, content);
        expect(() => new native.PackReader(p)).toThrow(expect.objectContaining({ code: 'CORAL_CORRUPT_OBJECT' }));
      }
    }));

  it('rebuildIndex regenerates identical indexes; missing or bad indexes fall back to the pack', () =>
    withDir(async (dir) => {
      const s = await LocalPackStore.open(dir);
      for (let t = 0; t < 3; t++) {
        const tx = s.beginWrite();
        for (let i = 0; i < 5; i++)
          await tx.put(`r${t}_${i}`, seeded(100 * i, t * 10 + i), u8(100 * i, { t: String(t) }));
        await tx.commit();
      }
      await s.close();
      const packsDir = path.join(dir, 'objects', 'packs');
      const idxFiles = fs
        .readdirSync(packsDir)
        .filter((n) => n.endsWith('.idx'))
        .sort();
      expect(idxFiles).toHaveLength(3);
      const before = idxFiles.map((n) => fs.readFileSync(path.join(packsDir, n)));
      fs.unlinkSync(path.join(packsDir, idxFiles[0]));
      fs.writeFileSync(path.join(packsDir, idxFiles[1]), '{"format":"coral-pack-index-1","pack":"x"');
      fs.writeFileSync(path.join(packsDir, idxFiles[2]), before[2].subarray(0, before[2].length - 9)); // truncated Brotli
      fs.writeFileSync(path.join(packsDir, 'pack-' + 'f'.repeat(32) + '.idx'), '{}'); // orphan
      const s2 = await LocalPackStore.open(dir);
      expect((await s2.get('r0_3')).attrs.extra).toEqual({ t: '0' });
      expect((await s2.get('r1_4')).bytes.byteLength).toBe(400);
      // A missing index (what a writer killed between its pack's rename and its index leaves) is
      // written again at open, byte for byte; the damaged ones are reported.
      expect(fs.readFileSync(path.join(packsDir, idxFiles[0]))).toEqual(before[0]);
      const problems = await s2.verify();
      expect((await s2.get('r2_4')).bytes.byteLength).toBe(400);
      expect(problems.map((p) => p.kind).sort()).toEqual(['index', 'index']);
      const r = await s2.rebuildIndex();
      expect(r).toEqual({ packs: 3, objects: 15, problems: [] });
      const after = fs
        .readdirSync(packsDir)
        .filter((n) => n.endsWith('.idx'))
        .sort();
      expect(after).toEqual(idxFiles);
      expect(after.map((n) => fs.readFileSync(path.join(packsDir, n)))).toEqual(before);
      expect(await s2.verify()).toEqual([]);
      await s2.close();
    }));

  it('repack removes old packs; a reader holding the old map refreshes and retries', () =>
    withDir(async (dir) => {
      const a = await LocalPackStore.open(dir);
      for (let t = 0; t < 3; t++) {
        const tx = a.beginWrite();
        await tx.put(`keep${t}`, seeded(1000, t + 1), u8(1000));
        await tx.put(`drop${t}`, seeded(1000, t + 11), u8(1000));
        await tx.commit();
      }
      const b = await LocalPackStore.open(dir); // maps keep* to the old packs, no pack opened yet
      const before = a.packNames();
      const r = await a.repack((id) => id.startsWith('keep'));
      expect(r).toMatchObject({ copied: 3, dropped: 3, skippedPacks: [] });
      expect(r.removedPacks.sort()).toEqual(before);
      const files = fs.readdirSync(path.join(dir, 'objects', 'packs')).sort();
      expect(files).toEqual([r.newPack!.name.replace('.h5', '.idx'), r.newPack!.name].sort());
      for (let t = 0; t < 3; t++)
        expect(Buffer.from((await b.get(`keep${t}`)).bytes).equals(seeded(1000, t + 1))).toBe(true);
      await expect(b.get('drop0')).rejects.toBeInstanceOf(ObjectNotFoundError);
      expect(await a.verify()).toEqual([]);
      await a.close();
      await b.close();
    }));

  it('repack leaves a pack alone when a writer reuses one of its objects meanwhile', () =>
    withDir(async (dir) => {
      const s = await LocalPackStore.open(dir);
      const tx0 = s.beginWrite();
      await tx0.put('a_keep', seeded(50, 1), u8(50));
      await tx0.put('b_shared', seeded(50, 2), u8(50));
      const p0 = (await tx0.commit())!;
      const old = new Date(Date.now() - 3_600_000); // as if written long ago: outside any grace period
      fs.utimesSync(s.packPath(p0.name), old, old);

      // Before the repack starts, a reuse freshens the pack: the grace period protects it.
      const w1 = s.beginWrite();
      expect(await w1.reuse('b_shared')).toBe(true);
      let r = await s.repack((id) => id === 'a_keep', { graceMs: 60_000 });
      expect(r).toMatchObject({ removedPacks: [], copied: 0 });
      await w1.abort();

      // During the repack (after it chose its candidates), a writer starts relying on
      // b_shared: the repack notices the pack's new mtime and does not delete it.
      fs.utimesSync(s.packPath(p0.name), old, old);
      const w2 = s.beginWrite();
      let calls = 0;
      let reused: Promise<boolean> | null = null;
      r = await s.repack(
        (id) => {
          if (id === 'a_keep' && ++calls === 2) reused = w2.reuse('b_shared'); // copy phase
          return id === 'a_keep';
        },
        { graceMs: 60_000 },
      );
      // TS narrows `reused` to null (it is assigned inside the repack callback): it is a Promise here.
      // eslint-disable-next-line @typescript-eslint/await-thenable
      expect(await reused).toBe(true);
      expect(r.skippedPacks).toEqual([p0.name]);
      expect(r.removedPacks).toEqual([]);
      expect(Buffer.from((await s.get('b_shared')).bytes).equals(seeded(50, 2))).toBe(true);
      await w2.put('w1', seeded(5), u8(5));
      expect(await w2.commit()).toMatchObject({ objects: 1 });
      expect(await s.verify()).toEqual([]);
      await s.close();
    }));

  it('cleanTmp removes stale temp packs only', () =>
    withDir(async (dir) => {
      const s = await LocalPackStore.open(dir);
      const stale = path.join(dir, 'tmp', 'pack-' + '1'.repeat(32) + '.h5.tmp');
      const fresh = path.join(dir, 'tmp', 'pack-' + '2'.repeat(32) + '.h5.tmp');
      const other = path.join(dir, 'tmp', 'HEAD.lock');
      for (const f of [stale, fresh, other]) fs.writeFileSync(f, 'x');
      const old = new Date(Date.now() - 7_200_000);
      fs.utimesSync(stale, old, old);
      fs.utimesSync(other, old, old);
      expect(await s.cleanTmp()).toEqual([path.basename(stale)]);
      expect(fs.readdirSync(path.join(dir, 'tmp')).sort()).toEqual([path.basename(fresh), 'HEAD.lock'].sort());
      await s.close();
    }));
});
