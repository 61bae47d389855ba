// LocalPackStore: the conformance suite plus what only a disk backend has --
// files and indexes, HDF5 interop (h5dump, h5py), damage, index rebuild,
// repack against a concurrent reader, and large objects.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ChecksumMismatchError, CorruptObjectError, ObjectNotFoundError } from '../../lib/errors';
import { native } from '../../lib/native';
import { LocalPackStore } from '../../lib/store/local';
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

runObjectStoreSuite('LocalPackStore', async () => {
  const dir = tmpDir('store');
  const store = await LocalPackStore.open(dir);
  return {
    store,
    corrupt: async (id: string) => corruptOnDisk(store, (await store.stat(id)).location!, id, 7),
    reopen: () => LocalPackStore.open(dir),
    cleanup: async () => fs.rmSync(dir, { recursive: true, force: true }),
  };
});

const u8 = (n: number, extra?: Record<string, string>): ObjectAttrs => ({ codec: 'raw', dtype: 'U8', shape: [n], rawSize: n, extra });

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = tmpDir('local');
  try {
    await fn(dir);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

describe('LocalPackStore on disk', () => {
  it('publishes pack + index under objects/packs and leaves tmp/ empty', () => withDir(async (dir) => {
    const s = await LocalPackStore.open(dir);
    const tx = s.beginWrite();
    await tx.put('aa', seeded(10), u8(10));
    const info = (await tx.commit())!;
    expect(info.name).toMatch(/^pack-[0-9a-f]{32}\.h5$/);
    const files = fs.readdirSync(path.join(dir, 'objects', 'packs')).sort();
    expect(files).toEqual([info.name.replace('.h5', '.idx'), info.name].sort());
    expect(fs.readdirSync(path.join(dir, 'tmp'))).toEqual([]);
    expect(fs.statSync(path.join(dir, 'objects', 'packs', info.name)).size).toBe(info.bytes);
    const idx = JSON.parse(fs.readFileSync(path.join(dir, 'objects', 'packs', info.name.replace('.h5', '.idx')), 'utf8'));
    expect(idx).toMatchObject({ format: 'coral-pack-index-1', pack: info.name, packSize: info.bytes });
    expect(idx.objects[0]).toMatchObject({ id: 'aa', dataset: '/objects/aa', size: 10, codec: 'raw' });
    await s.close();
  }));

  it('round-trips an object larger than 64 MiB through a fresh instance', () => withDir(async (dir) => {
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

  it.skipIf(!HAS_H5DUMP)('h5dump opens every pack and shows the dataset and its attributes', () => withDir(async (dir) => {
    const s = await LocalPackStore.open(dir);
    const tx = s.beginWrite();
    await tx.put('0123abcd', seeded(64, 3), { codec: 'zstd', dtype: 'BF16', shape: [4, 8], base: 'feed', rawSize: 64, extra: { depth: '1' } });
    await tx.put('scalar0', seeded(2, 4), { codec: 'raw', dtype: 'F16', shape: [], rawSize: 2 });
    const info = (await tx.commit())!;
    const tx2 = s.beginWrite();
    await tx2.put('second', seeded(5, 5), u8(5));
    await tx2.commit();
    for (const pack of s.packNames()) {
      const header = execFileSync('h5dump', ['-H', s.packPath(pack)], { encoding: 'utf8' });
      expect(header).toContain('GROUP "objects"');
      expect(header).toContain('H5T_STD_U8LE');
    }
    const p = s.packPath(info.name);
    const h = execFileSync('h5dump', ['-H', p], { encoding: 'utf8' });
    expect(h).toMatch(/DATASET "0123abcd"[\s\S]*DATASPACE\s+SIMPLE \{ \( 64 \) \/ \( 64 \) \}/);
    const a = execFileSync('h5dump', ['-A', p], { encoding: 'utf8' });
    expect(a).toContain('"coral-pack-1"');
    for (const needle of ['ATTRIBUTE "codec"', '"zstd"', '"BF16"', '"feed"', 'ATTRIBUTE "rawSize"', 'ATTRIBUTE "checksum"', 'ATTRIBUTE "depth"'])
      expect(a).toContain(needle);
    expect(a).toContain(`"${native.xxh3_128(seeded(64, 3))}"`);
    // The stored bytes, as h5dump prints them, are the object's bytes.
    const out = path.join(dir, 'dump.bin');
    execFileSync('h5dump', ['-d', '/objects/0123abcd', '-b', 'LE', '-o', out, p], { stdio: 'pipe' });
    expect(fs.readFileSync(out).equals(seeded(64, 3))).toBe(true);
    await s.close();
  }));

  it.skipIf(!HAS_H5PY)('h5py reads objects and attributes without coral', () => withDir(async (dir) => {
    const s = await LocalPackStore.open(dir);
    const data = seeded(1 << 20, 11);
    const tx = s.beginWrite();
    await tx.put('pyobj', data, { codec: 'zstd', dtype: 'F32', shape: [512, 512], base: '', rawSize: 1 << 20, extra: { depth: '0' } });
    await tx.put('pyscalar', seeded(8, 1), { codec: 'raw', dtype: 'F64', shape: [], rawSize: 8 });
    await tx.put('pyempty', new Uint8Array(0), { codec: 'raw', dtype: 'F32', shape: [0], rawSize: 0 });
    const info = (await tx.commit())!;
    const out = python(`
import sys, json, hashlib, h5py
f = h5py.File(sys.argv[1], 'r')
def s(v):  # coral writes fixed-length UTF-8 strings; h5py returns them as bytes
    return v.decode('utf-8') if isinstance(v, bytes) else (None if v is None else str(v))
res = {'format': s(f.attrs['format']), 'objects': {}}
for name, ds in f['objects'].items():
    a = ds.attrs
    res['objects'][name] = dict(id=s(a['id']), codec=s(a['codec']), dtype=s(a['dtype']), shape=[int(x) for x in a['shape']],
        base=s(a['base']), rawSize=int(a['rawSize']), checksum=s(a['checksum']), depth=s(a.get('depth')),
        sha=hashlib.sha256(ds[()].tobytes()).hexdigest(), n=int(ds.shape[0]), dt=str(ds.dtype))
print(json.dumps(res))`, [s.packPath(info.name)]);
    const res = JSON.parse(out);
    const sha = (b: Uint8Array) => require('node:crypto').createHash('sha256').update(b).digest('hex');
    expect(res.format).toBe('coral-pack-1');
    expect(res.objects.pyobj).toEqual({
      id: 'pyobj', codec: 'zstd', dtype: 'F32', shape: [512, 512], base: '', rawSize: 1 << 20,
      checksum: native.xxh3_128(data), depth: '0', sha: sha(data), n: 1 << 20, dt: 'uint8',
    });
    expect(res.objects.pyscalar.shape).toEqual([]);
    expect(res.objects.pyempty).toMatchObject({ n: 0, sha: sha(new Uint8Array(0)) });
    await s.close();
  }));

  it.skipIf(!HAS_H5PY)('reads a pack written by h5py from the documented format', () => withDir(async (dir) => {
    const s = await LocalPackStore.open(dir);
    const data = seeded(4096, 21);
    const name = 'pack-' + 'ab'.repeat(16) + '.h5';
    const src = path.join(dir, 'src.bin');
    fs.writeFileSync(src, data);
    // Fixed-length (not variable-length) strings on purpose: readers must accept both.
    python(`
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
`, [s.packPath(name), src, native.xxh3_128(data)]);
    await s.refresh();
    const got = await s.get('frompy');
    expect(Buffer.from(got.bytes).equals(data)).toBe(true);
    expect(got.attrs).toMatchObject({ codec: 'raw', shape: [4096], rawSize: 4096, extra: { note: 'py' } });
    await s.close();
  }));

  it('detects a flipped data byte: typed error naming the object, store otherwise usable', () => withDir(async (dir) => {
    const s = await LocalPackStore.open(dir);
    const tx = s.beginWrite();
    const big = seeded(3 << 20, 5); // async read path
    await tx.put('bigvictim', big, u8(big.length));
    await tx.put('bystander', seeded(100, 6), u8(100));
    const info = (await tx.commit())!;
    corruptOnDisk(s, info.name, 'bigvictim', (2 << 20) + 17);
    const s2 = await LocalPackStore.open(dir);
    const err = await s2.get('bigvictim').then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(ChecksumMismatchError);
    expect((err as Error).message).toContain('bigvictim');
    expect((err as Error).message).toContain(info.name);
    expect((err as ChecksumMismatchError).data).toMatchObject({ id: 'bigvictim', pack: info.name });
    expect((await s2.get('bystander')).bytes.byteLength).toBe(100);
    const problems = await s2.verify();
    expect(problems).toEqual([expect.objectContaining({ kind: 'object', id: 'bigvictim', pack: info.name, code: ChecksumMismatchError.code })]);
    await s.close();
    await s2.close();
  }));

  it('turns a truncated or garbage pack into typed errors, never a crash', () => withDir(async (dir) => {
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
    expect(problems).toEqual([expect.objectContaining({ kind: 'pack', pack: info.name, code: CorruptObjectError.code })]);
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
    for (const content of ['', 'not hdf5 at all', Buffer.concat([fs.readFileSync(p).subarray(0, 8), Buffer.alloc(5000, 0xff)])]) {
      fs.writeFileSync(p, content);
      expect(() => new native.PackReader(p)).toThrow(expect.objectContaining({ code: 'CORAL_CORRUPT_OBJECT' }));
    }
  }));

  it('rebuildIndex regenerates identical indexes; missing or bad indexes fall back to the pack', () => withDir(async (dir) => {
    const s = await LocalPackStore.open(dir);
    for (let t = 0; t < 3; t++) {
      const tx = s.beginWrite();
      for (let i = 0; i < 5; i++) await tx.put(`r${t}_${i}`, seeded(100 * i, t * 10 + i), u8(100 * i, { t: String(t) }));
      await tx.commit();
    }
    await s.close();
    const packsDir = path.join(dir, 'objects', 'packs');
    const idxFiles = fs.readdirSync(packsDir).filter((n) => n.endsWith('.idx')).sort();
    expect(idxFiles).toHaveLength(3);
    const before = idxFiles.map((n) => fs.readFileSync(path.join(packsDir, n), 'utf8'));
    fs.unlinkSync(path.join(packsDir, idxFiles[0]));
    fs.writeFileSync(path.join(packsDir, idxFiles[1]), '{"format":"coral-pack-index-1","pack":"x"');
    fs.writeFileSync(path.join(packsDir, 'pack-' + 'f'.repeat(32) + '.idx'), '{}'); // orphan
    const s2 = await LocalPackStore.open(dir);
    expect((await s2.get('r0_3')).attrs.extra).toEqual({ t: '0' });
    expect((await s2.get('r1_4')).bytes.byteLength).toBe(400);
    const problems = await s2.verify();
    expect(problems.map((p) => p.kind).sort()).toEqual(['index', 'index']);
    const r = await s2.rebuildIndex();
    expect(r).toEqual({ packs: 3, objects: 15, problems: [] });
    const after = fs.readdirSync(packsDir).filter((n) => n.endsWith('.idx')).sort();
    expect(after).toEqual(idxFiles);
    expect(after.map((n) => fs.readFileSync(path.join(packsDir, n), 'utf8'))).toEqual(before);
    expect(await s2.verify()).toEqual([]);
    await s2.close();
  }));

  it('repack removes old packs; a reader holding the old map refreshes and retries', () => withDir(async (dir) => {
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
    for (let t = 0; t < 3; t++) expect(Buffer.from((await b.get(`keep${t}`)).bytes).equals(seeded(1000, t + 1))).toBe(true);
    await expect(b.get('drop0')).rejects.toBeInstanceOf(ObjectNotFoundError);
    expect(await a.verify()).toEqual([]);
    await a.close();
    await b.close();
  }));

  it('repack leaves a pack alone when a writer reuses one of its objects meanwhile', () => withDir(async (dir) => {
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
    r = await s.repack((id) => {
      if (id === 'a_keep' && ++calls === 2) reused = w2.reuse('b_shared'); // copy phase
      return id === 'a_keep';
    }, { graceMs: 60_000 });
    expect(await reused).toBe(true);
    expect(r.skippedPacks).toEqual([p0.name]);
    expect(r.removedPacks).toEqual([]);
    expect(Buffer.from((await s.get('b_shared')).bytes).equals(seeded(50, 2))).toBe(true);
    await w2.put('w1', seeded(5), u8(5));
    expect(await w2.commit()).toMatchObject({ objects: 1 });
    expect(await s.verify()).toEqual([]);
    await s.close();
  }));

  it('cleanTmp removes stale temp packs only', () => withDir(async (dir) => {
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
