// The raw pack binding (native/bindings/pack.cc -> kernels/h5pack.h), without the store policy.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { native } from '../../lib/native';
import { seeded, tmpDir } from '../store/helpers';

const dir = tmpDir('packnative');
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
let n = 0;
const FLIP_STEP = Number(process.env.CORAL_FLIP_STEP ?? 31);
const fresh = () => path.join(dir, `p${n++}.h5`);
const attrs = (len: number) => ({ codec: 'raw', dtype: 'U8', shape: [len], rawSize: len });

async function writePack(objs: Array<[string, Buffer]>): Promise<string> {
  const p = fresh();
  const w = new native.PackWriter(p);
  for (const [id, b] of objs) w.put(id, b, attrs(b.length));
  await w.finish();
  return p;
}

describe('PackWriter / PackReader binding', () => {
  it('writes, lists and reads back with offsets that point at the raw bytes', async () => {
    const a = seeded(5000, 1);
    const big = seeded(3 << 20, 2);
    const p = fresh();
    const w = new native.PackWriter(p);
    const ra = w.put('a', a, { codec: 'zstd', dtype: 'F32', shape: [1250], base: 'b0', rawSize: 9999n, extra: { x: 'y' } });
    const rb = await w.putAsync('big', big, attrs(big.length));
    const re = w.put('e', Buffer.alloc(0), { codec: 'raw', dtype: 'F32', shape: [], rawSize: 0 });
    // 'a' and 'e' are small (< 16 KiB): their bytes go to /small/data, placed at finish().
    expect(ra).toMatchObject({ checksum: native.xxh3_128(a), size: 5000, offset: null, dataset: '/small/data' });
    expect(rb).toMatchObject({ size: big.length, dataset: '/objects/big' });
    expect(re).toEqual({ checksum: native.xxh3_128(Buffer.alloc(0)), size: 0, offset: null, dataset: '/small/data' });
    expect(w.count()).toBe(3);
    const fin = await w.finish();
    expect(fin.size).toBe(fs.statSync(p).size);
    expect(fin.entries.map((e) => e.id)).toEqual(['a', 'big', 'e']);
    const offA = fin.entries[0].offset!;
    expect(fin.entries[1].offset).toBe(rb.offset);
    expect(() => w.count()).toThrow(expect.objectContaining({ code: 'CORAL_INVALID_ARGUMENT' }));
    w.abort(); // idempotent after finish

    const r = new native.PackReader(p);
    expect(r.meta()).toMatchObject({ format: 'coral-pack-2' });
    expect(Date.now() - r.meta().createdUnixMs).toBeLessThan(60_000);
    const list = await r.list();
    expect(list.map((e) => e.id)).toEqual(['a', 'big', 'e']);
    expect(list[0]).toEqual({
      id: 'a', codec: 'zstd', dtype: 'F32', shape: [1250], base: 'b0', rawSize: 9999, checksum: ra.checksum,
      size: 5000, offset: offA, dataset: '/small/data', extra: { x: 'y' },
    });
    expect(list).toEqual(fin.entries);
    expect(r.stat('e')).toMatchObject({ shape: [], offset: null, dataset: '/small/data' });
    expect(r.stat('big').dataset).toBe('/objects/big');
    const file = fs.readFileSync(p);
    expect(file.subarray(offA, offA + 5000).equals(a)).toBe(true);
    expect(file.subarray(rb.offset!, rb.offset! + big.length).equals(big)).toBe(true);
    expect(r.readSync('a').equals(a)).toBe(true);
    expect((await r.read('big')).equals(big)).toBe(true);
    expect(r.readSync('e').length).toBe(0);
    const dst = Buffer.alloc(big.length + 10);
    expect(await r.readInto('big', dst)).toBe(big.length);
    expect(dst.subarray(0, big.length).equals(big)).toBe(true);
    expect(r.readIntoSync('a', new Uint8Array(6000))).toBe(5000);
    expect(() => r.readIntoSync('a', Buffer.alloc(10))).toThrow(expect.objectContaining({ code: 'CORAL_INVALID_ARGUMENT' }));
    expect(() => r.stat('zzz')).toThrow(expect.objectContaining({ code: 'CORAL_NOT_FOUND' }));
    await expect(r.read('zzz')).rejects.toMatchObject({ code: 'CORAL_NOT_FOUND' });
    r.close();
    expect(() => r.stat('a')).toThrow(expect.objectContaining({ code: 'CORAL_INVALID_ARGUMENT' }));
  });

  it('rejects bad ids, duplicates, reserved names and an existing path', async () => {
    const p = fresh();
    const w = new native.PackWriter(p);
    for (const id of ['', '.x', 'a/b', 'a b', 'x'.repeat(129)])
      expect(() => w.put(id, Buffer.alloc(1), attrs(1)), id).toThrow(expect.objectContaining({ code: 'CORAL_INVALID_ARGUMENT' }));
    w.put('dup', Buffer.alloc(1), attrs(1));
    expect(() => w.put('dup', Buffer.alloc(1), attrs(1))).toThrow(expect.objectContaining({ code: 'CORAL_INVALID_ARGUMENT' }));
    await expect(w.putAsync('dup', Buffer.alloc(1), attrs(1))).rejects.toMatchObject({ code: 'CORAL_INVALID_ARGUMENT' });
    expect(() => w.put('k', Buffer.alloc(1), { ...attrs(1), extra: { checksum: 'x' } })).toThrow(expect.objectContaining({ code: 'CORAL_INVALID_ARGUMENT' }));
    expect(() => w.put('k', Buffer.alloc(1), { ...attrs(1), rawSize: -1 })).toThrow(expect.objectContaining({ code: 'CORAL_INVALID_ARGUMENT' }));
    expect(() => w.put('k', Buffer.alloc(1), { ...attrs(1), codec: 'a\0b' })).toThrow(expect.objectContaining({ code: 'CORAL_INVALID_ARGUMENT' }));
    expect(() => w.put('k', 'nope' as unknown as Buffer, attrs(1))).toThrow(expect.objectContaining({ code: 'CORAL_INVALID_ARGUMENT' }));
    expect(() => new native.PackWriter(p)).toThrow(expect.objectContaining({ code: 'CORAL_HDF5' }));
    expect(() => new native.PackWriter(path.join(dir, 'no', 'such', 'dir.h5'))).toThrow(expect.objectContaining({ code: 'CORAL_HDF5' }));
    await w.finish();
    expect(() => w.finish()).toThrow(expect.objectContaining({ code: 'CORAL_INVALID_ARGUMENT' }));
    expect(() => w.put('late', Buffer.alloc(1), attrs(1))).toThrow(expect.objectContaining({ code: 'CORAL_INVALID_ARGUMENT' }));
  });

  it('checks type tags: one class cannot be used as the other', async () => {
    const p = await writePack([['a', seeded(10)]]);
    const r = new native.PackReader(p);
    const w = new native.PackWriter(fresh());
    expect(() => native.PackReader.prototype.stat.call(w, 'a')).toThrow(expect.objectContaining({ code: 'CORAL_INVALID_ARGUMENT' }));
    expect(() => native.PackWriter.prototype.count.call(r)).toThrow(expect.objectContaining({ code: 'CORAL_INVALID_ARGUMENT' }));
    expect(() => native.PackReader.prototype.close.call({})).toThrow(expect.objectContaining({ code: 'CORAL_INVALID_ARGUMENT' }));
    expect(() => (native.PackReader as unknown as (p: string) => void)(p)).toThrow();
    w.abort();
    r.close();
  });

  it('reports missing, damaged and foreign files with typed errors', async () => {
    expect(() => new native.PackReader(path.join(dir, 'missing.h5'))).toThrow(expect.objectContaining({ code: 'CORAL_NOT_FOUND' }));
    const junk = path.join(dir, 'junk.h5');
    fs.writeFileSync(junk, seeded(10_000, 3));
    expect(() => new native.PackReader(junk)).toThrow(expect.objectContaining({ code: 'CORAL_CORRUPT_OBJECT' }));
    const p = await writePack([['a', seeded(100_000, 1)], ['b', seeded(10, 2)]]);
    const size = fs.statSync(p).size;
    // Every truncation point and a sweep of single-byte metadata damage: errors, never a crash.
    const whole = fs.readFileSync(p);
    for (const cut of [0, 1, 8, 100, 1000, 2048, size - 100_000, size - 1]) {
      const t = path.join(dir, `cut${cut}.h5`);
      fs.writeFileSync(t, whole.subarray(0, Math.max(0, cut)));
      let threw = false;
      try {
        const r = new native.PackReader(t);
        await r.list();
        r.readSync('a');
        r.close();
      } catch (e) {
        threw = true;
        expect((e as { code: string }).code).toMatch(/^CORAL_(CORRUPT_OBJECT|CHECKSUM_MISMATCH|NOT_FOUND)$/);
      }
      expect(threw, `cut at ${cut}`).toBe(true);
    }
    const r0 = new native.PackReader(p);
    const dataStart = r0.stat('a').offset!;
    r0.close();
    for (let at = 0; at < dataStart; at += FLIP_STEP) {
      const t = path.join(dir, 'flip.h5');
      const copy = Buffer.from(whole);
      copy[at] ^= 0xff;
      fs.writeFileSync(t, copy);
      try {
        const r = new native.PackReader(t);
        for (const e of await r.list()) r.readSync(e.id);
        r.close();
      } catch (e) {
        expect((e as { code: string }).code, `flip at ${at}`).toMatch(/^CORAL_(CORRUPT_OBJECT|CHECKSUM_MISMATCH|NOT_FOUND|UNSUPPORTED)$/);
      }
    }
  });

  it('serialises concurrent putAsync / read calls on one handle', async () => {
    const objs = Array.from({ length: 6 }, (_, i) => seeded((2 << 20) + i, 40 + i));
    const p = fresh();
    const w = new native.PackWriter(p);
    const res = await Promise.all(objs.map((b, i) => w.putAsync(`c${i}`, b, attrs(b.length))));
    expect(new Set(res.map((r) => r.offset)).size).toBe(objs.length);
    await w.finish();
    const r = new native.PackReader(p);
    const back = await Promise.all(objs.map((_, i) => r.read(`c${i}`)));
    back.forEach((b, i) => expect(b.equals(objs[i])).toBe(true));
    r.close();
  });

  it('keeps working when closed or aborted with async work pending', async () => {
    const big = seeded(8 << 20, 4);
    const p = await writePack([['big', big]]);
    const r = new native.PackReader(p);
    const pending = r.read('big');
    r.close();
    expect((await pending).equals(big)).toBe(true);
    const w = new native.PackWriter(fresh());
    const put = w.putAsync('x', big, attrs(big.length));
    w.abort();
    // The put either finished before the abort or fails cleanly after it.
    await put.then(() => undefined, (e) => expect(e.code).toBe('CORAL_INVALID_ARGUMENT'));
  });
  it('aggregates small objects below smallObjectMax; larger ones and smallObjectMax 0 get datasets', async () => {
    const sizes = [0, 1, 99, 1023, 1024, 1025, 50_000];
    const objs = sizes.map((n, i) => [`s${i}`, seeded(n, i + 1)] as [string, Buffer]);
    for (const [max, small] of [[1024, ['s0', 's1', 's2', 's3']], [0, []], [undefined, ['s0', 's1', 's2', 's3', 's4', 's5']]] as const) {
      const p = fresh();
      const w = new native.PackWriter(p, max === undefined ? undefined : { smallObjectMax: max });
      const put = objs.map(([id, b]) => w.put(id, b, { ...attrs(b.length), extra: { k: `v ${id}&=+%/ü` } }));
      expect(put.filter((r) => r.dataset === '/small/data').length).toBe(small.length);
      const fin = await w.finish();
      const r = new native.PackReader(p);
      const list = await r.list();
      expect(list).toEqual(fin.entries);
      expect(list.filter((e) => e.dataset === '/small/data').map((e) => e.id)).toEqual(small);
      const file = fs.readFileSync(p);
      for (const [id, b] of objs) {
        const e = r.stat(id);
        expect(e).toMatchObject({ id, size: b.length, checksum: native.xxh3_128(b), extra: { k: `v ${id}&=+%/ü` } });
        expect(r.readSync(id).equals(b)).toBe(true);
        const dst = Buffer.alloc(b.length + 3);
        expect(await r.readInto(id, dst)).toBe(b.length);
        expect(dst.subarray(0, b.length).equals(b)).toBe(true);
        if (b.length > 0) expect(file.subarray(e.offset!, e.offset! + b.length).equals(b)).toBe(true);
        else expect(e.offset).toBeNull();
      }
      if (small.length > 0) expect(() => r.readIntoSync('s3', Buffer.alloc(10))).toThrow(expect.objectContaining({ code: 'CORAL_INVALID_ARGUMENT' }));
      r.close();
    }
    expect(() => new native.PackWriter(fresh(), { smallObjectMax: -1 })).toThrow(expect.objectContaining({ code: 'CORAL_INVALID_ARGUMENT' }));
    expect(() => new native.PackWriter(fresh(), 5 as never)).toThrow(expect.objectContaining({ code: 'CORAL_INVALID_ARGUMENT' }));
  });

  it('bounds the small-object buffer: past 64 MiB further small objects become datasets', async () => {
    const b = seeded(16_000, 5);
    const n = Math.floor((64 << 20) / b.length) + 3;
    const p = fresh();
    const w = new native.PackWriter(p);
    const kinds = Array.from({ length: n }, (_, i) => w.put(`cap${i}`, b, attrs(b.length)).dataset);
    const small = kinds.filter((d) => d === '/small/data').length;
    expect(small).toBe(Math.floor((64 << 20) / b.length));
    expect(kinds.slice(small).every((d, i) => d === `/objects/cap${small + i}`)).toBe(true);
    const fin = await w.finish();
    const r = new native.PackReader(p);
    expect((await r.list()).length).toBe(n);
    expect(r.readSync(`cap${small - 1}`).equals(b)).toBe(true);
    expect(r.readSync(`cap${n - 1}`).equals(b)).toBe(true);
    expect(fin.size).toBeLessThan(n * b.length + n * 1000);
    r.close();
    fs.rmSync(p);
  });

  it('rejects an id used by a small object and a dataset in one pack', async () => {
    const w = new native.PackWriter(fresh(), { smallObjectMax: 100 });
    w.put('x', Buffer.alloc(10), attrs(10));
    expect(() => w.put('x', Buffer.alloc(1000), attrs(1000))).toThrow(expect.objectContaining({ code: 'CORAL_INVALID_ARGUMENT' }));
    w.put('y', Buffer.alloc(1000), attrs(1000));
    expect(() => w.put('y', Buffer.alloc(10), attrs(10))).toThrow(expect.objectContaining({ code: 'CORAL_INVALID_ARGUMENT' }));
    expect((await w.finish()).entries.map((e) => [e.id, e.dataset])).toEqual([['x', '/small/data'], ['y', '/objects/y']]);
  });

  // Both table layouts: compact (few rows, inside the checksummed object header) and chunked
  // (many rows, fletcher32 + deflate). Any single damaged byte gives a typed error or, when it
  // lands in unused space, the exact original objects and attributes -- never wrong data.
  for (const [label, count] of [['compact', 12], ['chunked', 150]] as const) {
    it(`survives a byte-flip sweep of a pack with a ${label} small-object table`, async () => {
      const objs: Array<[string, Buffer]> = Array.from({ length: count }, (_, i) => [`t${String(i).padStart(3, '0')}`, seeded(i % 7 === 0 ? 0 : 20 + i, i + 1)]);
      objs.push(['large', seeded(20_000, 99)]);
      const p = fresh();
      const w = new native.PackWriter(p);
      for (const [id, b] of objs) w.put(id, b, { ...attrs(b.length), extra: { i: id } });
      await w.finish();
      const whole = fs.readFileSync(p);
      const r0 = new native.PackReader(p);
      const want = await r0.list();
      const smallStart = Math.min(...want.filter((e) => e.dataset === '/small/data' && e.offset !== null).map((e) => e.offset!));
      r0.close();
      expect(want.filter((e) => e.dataset === '/small/data')).toHaveLength(count);
      const step = FLIP_STEP;
      let errors = 0;
      for (let at = 0; at < whole.length; at += step) {
        const t = path.join(dir, `sflip-${label}.h5`);
        const copy = Buffer.from(whole);
        copy[at] ^= 0x5a;
        fs.writeFileSync(t, copy);
        try {
          const r = new native.PackReader(t);
          const got = await r.list();
          for (const e of got) r.readSync(e.id);
          r.close();
          expect(got, `flip at ${at}`).toEqual(want);
        } catch (e) {
          errors++;
          expect((e as { code: string }).code, `flip at ${at}`).toMatch(/^CORAL_(CORRUPT_OBJECT|CHECKSUM_MISMATCH|NOT_FOUND|UNSUPPORTED)$/);
          if (at >= smallStart && at < smallStart + 200 && (e as { code: string }).code === 'CORAL_CHECKSUM_MISMATCH')
            expect((e as Error).message).toMatch(/object t\d{3} /);
        }
      }
      expect(errors).toBeGreaterThan(0);
    });
  }
});
