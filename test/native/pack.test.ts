// The raw pack binding (native/bindings/pack.cc -> kernels/h5pack.h), without the store policy.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { native } from '../../lib/native';
import { HAS_H5PY, python, seeded, tmpDir } from '../store/helpers';

const dir = tmpDir('packnative');
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
let n = 0;
const FLIP_STEP = Number(process.env.CORAL_FLIP_STEP ?? 31);
const fresh = () => path.join(dir, `p${n++}.h5`);
const attrs = (len: number) => ({ codec: 'raw', dtype: 'U8', shape: [len], rawSize: len });
/** Bytes of one /small/data<k> part (kernels/h5pack.h kPackSmallPart); smallObjectMax is clamped to it. */
const PART = 8 << 20;
/** The writer's default smallObjectMax (kPackDefaultSmallMax). */
const SMALL_MAX = 1 << 20;

/** No two [start, length] byte ranges overlap. */
function expectDisjoint(ranges: Array<[number, number]>): void {
  const sorted = [...ranges].sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < sorted.length; i++) expect(sorted[i][0], JSON.stringify(sorted)).toBeGreaterThanOrEqual(sorted[i - 1][0] + sorted[i - 1][1]);
}

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
    // 'a' and 'e' are small (< 1 MiB): their bytes go to the first part, /small/data0, written when the
    // part is full or at finish(); `room` is what that part can still take.
    expect(ra).toEqual({ checksum: native.xxh3_128(a), size: 5000, offset: null, dataset: '/small/data0', room: PART - 5000 });
    expect(rb).toMatchObject({ size: big.length, dataset: '/objects/big', room: PART - 5000 });
    expect(rb.offset).toEqual(expect.any(Number));
    expect(re).toEqual({ checksum: native.xxh3_128(Buffer.alloc(0)), size: 0, offset: null, dataset: '/small/data0', room: PART - 5000 });
    expect(w.count()).toBe(3);
    const fin = await w.finish();
    expect(fin.size).toBe(fs.statSync(p).size);
    expect(fin.entries.map((e) => e.id)).toEqual(['a', 'big', 'e']);
    const offA = fin.entries[0].offset!;
    expect(fin.entries[1].offset).toBe(rb.offset);
    expect(() => w.count()).toThrow(expect.objectContaining({ code: 'CORAL_INVALID_ARGUMENT' }));
    w.abort(); // idempotent after finish

    const r = new native.PackReader(p);
    expect(r.meta()).toMatchObject({ format: 'coral-pack-3' });
    expect(Date.now() - r.meta().createdUnixMs).toBeLessThan(60_000);
    const list = await r.list();
    expect(list.map((e) => e.id)).toEqual(['a', 'big', 'e']);
    expect(list[0]).toEqual({
      id: 'a', codec: 'zstd', dtype: 'F32', shape: [1250], base: 'b0', rawSize: 9999, checksum: ra.checksum,
      size: 5000, offset: offA, dataset: '/small/data0', extra: { x: 'y' },
    });
    expect(list).toEqual(fin.entries);
    expect(r.stat('e')).toMatchObject({ shape: [], offset: null, dataset: '/small/data0' });
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
    const sizes = [0, 1, 99, 1023, 1024, 1025, 50_000, SMALL_MAX - 1, SMALL_MAX];
    const objs = sizes.map((n, i) => [`s${i}`, seeded(n, i + 1)] as [string, Buffer]);
    for (const [max, small] of [
      [1024, ['s0', 's1', 's2', 's3']],
      [0, []],
      [undefined, ['s0', 's1', 's2', 's3', 's4', 's5', 's6', 's7']], // the default: below 1 MiB
    ] as const) {
      const p = fresh();
      const w = new native.PackWriter(p, max === undefined ? undefined : { smallObjectMax: max });
      const put = objs.map(([id, b]) => w.put(id, b, { ...attrs(b.length), extra: { k: `v ${id}&=+%/ü` } }));
      // The small ones all fit the first part; the others get a dataset each.
      expect(put.filter((r) => r.dataset === '/small/data0').length).toBe(small.length);
      const fin = await w.finish();
      const r = new native.PackReader(p);
      const list = await r.list();
      expect(list).toEqual(fin.entries);
      expect(list.filter((e) => e.dataset === '/small/data0').map((e) => e.id)).toEqual(small);
      expect(list.filter((e) => e.dataset !== '/small/data0').map((e) => e.dataset)).toEqual(
        objs.filter(([id]) => !(small as readonly string[]).includes(id)).map(([id]) => `/objects/${id}`),
      );
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

  it('streams small objects out in 8 MiB parts: any amount of them stays small', async () => {
    // ~70 MiB of small objects (up to just under 1 MiB each, some tiny or empty): more than a pack's small
    // objects could once take (64 MiB, buffered until finish). Every one stays small, in put order, in
    // parts /small/data0, data1, …: a part takes objects while they fit its 8 MiB, then is written out.
    const sizes = [SMALL_MAX - 1, 700_001, 0, 333_333, 17, 999_999, 524_288];
    const objs: Array<[string, Buffer]> = [];
    let total = 0;
    for (let i = 0; total < 70 << 20; i++) {
      const b = seeded(sizes[i % sizes.length], i + 1);
      objs.push([`cap${String(i).padStart(3, '0')}`, b]);
      total += b.length;
    }
    const want: Array<{ part: number; at: number }> = [];
    const partBytes = [0];
    for (const [, b] of objs) {
      if (partBytes[partBytes.length - 1] + b.length > PART) partBytes.push(0);
      want.push({ part: partBytes.length - 1, at: partBytes[partBytes.length - 1] });
      partBytes[partBytes.length - 1] += b.length;
    }
    expect(partBytes.length).toBeGreaterThanOrEqual(9);

    const p = fresh();
    const w = new native.PackWriter(p);
    const put = objs.map(([id, b]) => w.put(id, b, attrs(b.length)));
    expect(put.map((r) => r.dataset)).toEqual(want.map((x) => `/small/data${x.part}`));
    expect(put.map((r) => r.room)).toEqual(want.map((x, i) => PART - x.at - objs[i][1].length));
    expect(put.every((r) => r.offset === null)).toBe(true);
    const fin = await w.finish();
    // The parts' bytes, at most a 4 KiB alignment gap before each part, and the table (about 100 B a row).
    expect(fin.size).toBeLessThan(total + partBytes.length * 4096 + objs.length * 200 + 8192);

    const r = new native.PackReader(p);
    const list = await r.list();
    expect(list).toEqual(fin.entries);
    expect(list.every((e) => e.dataset.startsWith('/small/data'))).toBe(true);
    const file = fs.readFileSync(p);
    const partStart: number[] = [];
    for (const [i, [id, b]] of objs.entries()) {
      const e = r.stat(id);
      const { part, at } = want[i];
      expect(e).toMatchObject({ id, size: b.length, dataset: `/small/data${part}` });
      if (b.length === 0) expect(e.offset).toBeNull();
      else {
        // Objects of one part are adjacent in the file, at their offset inside the part.
        partStart[part] ??= e.offset! - at;
        expect(e.offset, id).toBe(partStart[part] + at);
        expect(file.subarray(e.offset!, e.offset! + b.length).equals(b), id).toBe(true);
      }
      expect(r.readSync(id).equals(b), id).toBe(true);
    }
    // The parts do not overlap (a small last part may sit in an alignment gap before an earlier one).
    expectDisjoint(partStart.map((start, k) => [start, partBytes[k]]));
    r.close();
    if (HAS_H5PY) {
      const shapes = python(
        `import sys, json, h5py
f = h5py.File(sys.argv[1], 'r')
print(json.dumps(sorted((k, f['small'][k].shape[0]) for k in f['small'] if k != 'index')))`,
        [p],
      );
      const names = partBytes.map((_, k) => `data${k}`);
      expect(JSON.parse(shapes)).toEqual(names.map((n, k) => [n, partBytes[k]]).sort());
    }
    fs.rmSync(p);
  });

  it('fills a part exactly, then spills to the next: room counts down by each small put', async () => {
    const p = fresh();
    const w = new native.PackWriter(p);
    const puts: Array<[string, Buffer, string, number]> = []; // id, bytes, expected dataset, expected room
    let room = PART;
    const put = (id: string, b: Buffer, dataset: string, roomAfter: number) => {
      const r = w.put(id, b, attrs(b.length));
      expect(r, id).toEqual({ checksum: native.xxh3_128(b), size: b.length, offset: dataset.startsWith('/small/') ? null : expect.any(Number), dataset, room: roomAfter });
      puts.push([id, b, dataset, roomAfter]);
    };
    // Eight objects just under 1 MiB leave 8 bytes of the 8 MiB part; an 8-byte object fills it to the byte.
    for (let i = 0; i < 8; i++) put(`f${i}`, seeded(SMALL_MAX - 1, i + 1), '/small/data0', (room -= SMALL_MAX - 1));
    expect(room).toBe(8);
    put('fill', seeded(8, 20), '/small/data0', 0);
    // An empty object takes no bytes: it still fits the full part.
    put('empty', Buffer.alloc(0), '/small/data0', 0);
    // A large object is a dataset of its own and leaves the part as it is.
    put('large', seeded(2 << 20, 21), '/objects/large', 0);
    // The next small byte does not fit: data0 is written out, the byte starts data1.
    put('spill', seeded(1, 22), '/small/data1', PART - 1);
    put('next', seeded(1000, 23), '/small/data1', PART - 1001);
    const fin = await w.finish();
    const r = new native.PackReader(p);
    expect(await r.list()).toEqual(fin.entries);
    const file = fs.readFileSync(p);
    const at = (id: string) => r.stat(id).offset!;
    for (const [id, b, dataset] of puts) {
      expect(r.stat(id), id).toMatchObject({ dataset, size: b.length });
      expect(r.readSync(id).equals(b), id).toBe(true);
      if (b.length > 0) expect(file.subarray(at(id), at(id) + b.length).equals(b), id).toBe(true);
    }
    // data0 is the eight objects and 'fill', back to back; data1 is 'spill' and 'next', elsewhere in the file.
    for (let i = 1; i < 8; i++) expect(at(`f${i}`)).toBe(at('f0') + i * (SMALL_MAX - 1));
    expect(at('fill')).toBe(at('f0') + PART - 8);
    expect(r.stat('empty').offset).toBeNull();
    expect(at('next')).toBe(at('spill') + 1);
    expectDisjoint([[at('f0'), PART], [at('spill'), 1001], [at('large'), 2 << 20]]);
    r.close();
  });

  it('clamps smallObjectMax to the part size (8 MiB)', async () => {
    const p = fresh();
    const w = new native.PackWriter(p, { smallObjectMax: 64 << 20 });
    const under = seeded(PART - 1, 1);
    const at = seeded(PART, 2);
    expect(w.put('under', under, attrs(under.length))).toMatchObject({ dataset: '/small/data0', offset: null, room: 1 });
    const r1 = await w.putAsync('at', at, attrs(at.length));
    expect(r1).toMatchObject({ dataset: '/objects/at', room: 1 });
    expect(r1.offset).toEqual(expect.any(Number));
    await w.finish();
    const r = new native.PackReader(p);
    expect(r.readSync('under').equals(under)).toBe(true);
    expect((await r.read('at')).equals(at)).toBe(true);
    r.close();
    fs.rmSync(p);
  });

  it('rejects an id used by a small object and a dataset in one pack', async () => {
    const w = new native.PackWriter(fresh(), { smallObjectMax: 100 });
    w.put('x', Buffer.alloc(10), attrs(10));
    expect(() => w.put('x', Buffer.alloc(1000), attrs(1000))).toThrow(expect.objectContaining({ code: 'CORAL_INVALID_ARGUMENT' }));
    w.put('y', Buffer.alloc(1000), attrs(1000));
    expect(() => w.put('y', Buffer.alloc(10), attrs(10))).toThrow(expect.objectContaining({ code: 'CORAL_INVALID_ARGUMENT' }));
    expect((await w.finish()).entries.map((e) => [e.id, e.dataset])).toEqual([['x', '/small/data0'], ['y', '/objects/y']]);
  });

  // Both table layouts: compact (few rows, inside the checksummed object header) and chunked
  // (many rows, fletcher32 + deflate). Any single damaged byte gives a typed error or, when it
  // lands in unused space, the exact original objects and attributes -- never wrong data.
  for (const [label, count] of [['compact', 12], ['chunked', 150]] as const) {
    it(`survives a byte-flip sweep of a pack with a ${label} small-object table`, async () => {
      const objs: Array<[string, Buffer]> = Array.from({ length: count }, (_, i) => [`t${String(i).padStart(3, '0')}`, seeded(i % 7 === 0 ? 0 : 20 + i, i + 1)]);
      objs.push(['large', seeded(20_000, 99)]);
      const p = fresh();
      // A bound below 20 000 bytes keeps 'large' a dataset of its own (the default, 1 MiB, would not).
      const w = new native.PackWriter(p, { smallObjectMax: 16384 });
      for (const [id, b] of objs) w.put(id, b, { ...attrs(b.length), extra: { i: id } });
      await w.finish();
      const whole = fs.readFileSync(p);
      const r0 = new native.PackReader(p);
      const want = await r0.list();
      // The small objects fill a fraction of one part, /small/data0; smallStart is where its bytes begin.
      const small = want.filter((e) => e.dataset === '/small/data0');
      const smallStart = Math.min(...small.filter((e) => e.offset !== null).map((e) => e.offset!));
      r0.close();
      expect(small).toHaveLength(count);
      expect(want.find((e) => e.id === 'large')?.dataset).toBe('/objects/large');
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

  // The same property for a pack of two parts. The first is 8 MiB of object bytes, whose damage only the
  // objects' checksums catch: the sweep covers everything but its middle (flipped in place, then restored).
  it('survives a byte-flip sweep of a pack with two small-object parts', async () => {
    const objs: Array<[string, Buffer]> = Array.from({ length: 8 }, (_, i) => [`f${i}`, seeded(SMALL_MAX - 1, i + 1)]);
    for (let i = 0; i < 20; i++) objs.push([`s${String(i).padStart(2, '0')}`, seeded(i % 5 === 0 ? 0 : 30 + i, 50 + i)]);
    const p = fresh();
    const w = new native.PackWriter(p);
    for (const [id, b] of objs) w.put(id, b, { ...attrs(b.length), extra: { i: id } });
    await w.finish();
    const r0 = new native.PackReader(p);
    const want = await r0.list();
    r0.close();
    // f0..f7 and the empty s00 fill data0 but for 8 bytes; s01 does not fit and starts data1.
    const inPart = (k: number) => want.filter((e) => e.dataset === `/small/data${k}`).map((e) => e.id);
    expect(inPart(0)).toEqual(['f0', 'f1', 'f2', 'f3', 'f4', 'f5', 'f6', 'f7', 's00']);
    expect(inPart(1)).toEqual(objs.slice(9).map(([id]) => id));
    const start0 = want.find((e) => e.id === 'f0')!.offset!;
    const end0 = start0 + 8 * (SMALL_MAX - 1);
    const t = path.join(dir, 'sflip-parts.h5');
    fs.copyFileSync(p, t);
    const size = fs.statSync(t).size;
    const fd = fs.openSync(t, 'r+');
    const b = Buffer.alloc(1);
    let errors = 0;
    try {
      for (let at = 0; at < size; at += FLIP_STEP) {
        if (at >= start0 + 256 && at < end0 - 256) at = end0 - 256; // skip the middle of data0
        fs.readSync(fd, b, 0, 1, at);
        b[0] ^= 0x5a;
        fs.writeSync(fd, b, 0, 1, at);
        try {
          const r = new native.PackReader(t);
          const got = await r.list();
          for (const e of got) r.readSync(e.id);
          r.close();
          expect(got, `flip at ${at}`).toEqual(want);
        } catch (e) {
          errors++;
          expect((e as { code: string }).code, `flip at ${at}`).toMatch(/^CORAL_(CORRUPT_OBJECT|CHECKSUM_MISMATCH|NOT_FOUND|UNSUPPORTED)$/);
        } finally {
          b[0] ^= 0x5a;
          fs.writeSync(fd, b, 0, 1, at);
        }
      }
    } finally {
      fs.closeSync(fd);
    }
    expect(errors).toBeGreaterThan(0);
    fs.rmSync(t);
    fs.rmSync(p);
  });
});
