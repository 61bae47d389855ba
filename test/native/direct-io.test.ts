// Writes that bypass the page cache (native/kernels/direct_io.h): pack payloads written with
// O_DIRECT at their datasets' offsets, the FileWriter used by checkout, and the early release
// of pooled buffers (recycleBuffer). Each path is also run with CORAL_NO_DIRECT_IO=1 (the
// buffered fallback, as on tmpfs) and must produce the same bytes.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { native } from '../../lib/native';
import { HAS_H5PY, python, seeded, tmpDir } from '../store/helpers';

const dir = tmpDir('directio');
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
afterEach(() => {
  delete process.env.CORAL_NO_DIRECT_IO;
});
let n = 0;
const fresh = (ext: string) => path.join(dir, `f${n++}.${ext}`);
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** Large objects: unaligned and aligned memory, sizes on and off block boundaries. */
function objects(): Array<[string, Uint8Array]> {
  const unaligned = seeded((3 << 20) + 124, 7).subarray(1); // odd address, odd length
  const aligned = native.allocBuffer(5 << 20); // a pooled mapping: 2 MiB aligned
  aligned.set(seeded(5 << 20, 8));
  const tiny = seeded(1 << 20, 9).subarray(0, (1 << 20) + 0); // exactly the direct threshold
  const justOver = seeded((1 << 20) + 1, 10);
  return [
    ['u', unaligned],
    ['a', aligned],
    ['t', tiny],
    ['j', justOver],
    ['s', seeded(3000, 11)], // small (below the default 1 MiB bound): /small/data0
  ];
}

async function writePack(p: string): Promise<Array<{ id: string; offset: number | null; size: number }>> {
  const w = new native.PackWriter(p);
  for (const [id, b] of objects())
    await w.putAsync(id, b, { codec: 'raw', dtype: 'U8', shape: [b.byteLength], rawSize: b.byteLength });
  return (await w.finish()).entries;
}

describe('pack payloads written with O_DIRECT', () => {
  for (const mode of ['direct', 'buffered'] as const) {
    it(`${mode}: reads back byte for byte, at the offsets the writer reports`, async () => {
      if (mode === 'buffered') process.env.CORAL_NO_DIRECT_IO = '1';
      const p = fresh('h5');
      const entries = await writePack(p);
      const file = fs.readFileSync(p);
      const r = new native.PackReader(p);
      for (const [id, b] of objects()) {
        const e = entries.find((x) => x.id === id)!;
        expect(e.size).toBe(b.byteLength);
        expect(Buffer.from(await r.read(id)).equals(Buffer.from(b))).toBe(true);
        // The offset points at the raw bytes in the file.
        expect(file.subarray(e.offset!, e.offset! + e.size).equals(Buffer.from(b))).toBe(true);
        // Large objects start on a 4 KiB boundary either way (the same file layout).
        if (b.byteLength >= 1 << 20) expect(e.offset! % 4096).toBe(0);
      }
      r.close();
    });
  }

  it('writes the same file with and without O_DIRECT (bar the creation time)', async () => {
    const a = fresh('h5');
    await writePack(a);
    process.env.CORAL_NO_DIRECT_IO = '1';
    const b = fresh('h5');
    await writePack(b);
    expect(fs.statSync(a).size).toBe(fs.statSync(b).size);
  });

  it.skipIf(!HAS_H5PY)('h5py reads the directly written datasets', async () => {
    const p = fresh('h5');
    await writePack(p);
    const out = JSON.parse(
      python(
        `
import sys, json, hashlib, h5py
f = h5py.File(sys.argv[1], 'r')
print(json.dumps({k: hashlib.sha256(v[()].tobytes()).hexdigest() for k, v in f['objects'].items()}))`,
        [p],
      ),
    );
    // Every object of at least the default smallObjectMax (1 MiB) has a dataset; 's' is a row of /small/index.
    const large = objects().filter(([, b]) => b.byteLength >= 1 << 20);
    expect(Object.keys(out).sort()).toEqual(large.map(([id]) => id).sort());
    for (const [id, b] of large) expect(out[id]).toBe(sha(b));
  });
});

describe('FileWriter', () => {
  const chunks = () => [
    new Uint8Array(0),
    seeded(1, 1),
    seeded(4095, 2),
    seeded(4097, 3).subarray(1),
    seeded((9 << 20) + 5, 4),
    seeded(3, 5),
  ];

  for (const mode of ['direct', 'buffered'] as const) {
    it(`${mode}: writes the chunks in order with the exact size`, async () => {
      if (mode === 'buffered') process.env.CORAL_NO_DIRECT_IO = '1';
      const p = fresh('bin');
      const w = new native.FileWriter(p, 0o600);
      if (mode === 'buffered') expect(w.direct()).toBe(false);
      for (const c of chunks()) await w.appendAsync(c);
      const size = await w.finish();
      const want = Buffer.concat(chunks());
      expect(size).toBe(want.length);
      expect(fs.readFileSync(p).equals(want)).toBe(true);
      expect(fs.statSync(p).mode & 0o777).toBe(0o600);
      expect(() => w.abort()).not.toThrow();
      expect(() => w.finish()).toThrow(/finished or aborted/);
    });
  }

  it('an empty file, and a file of exactly one block', async () => {
    for (const c of [[], [seeded(4096, 6)]]) {
      const p = fresh('bin');
      const w = new native.FileWriter(p);
      for (const b of c) await w.appendAsync(b);
      expect(await w.finish()).toBe(c.reduce((s, b) => s + b.length, 0));
      expect(fs.readFileSync(p).equals(Buffer.concat(c))).toBe(true);
    }
  });

  it('creates exclusively, refuses overlapping calls, and stops after abort', async () => {
    const p = fresh('bin');
    fs.writeFileSync(p, 'x');
    expect(() => new native.FileWriter(p)).toThrow(/exists/i);
    const q = fresh('bin');
    const w = new native.FileWriter(q);
    const first = w.appendAsync(seeded(1 << 20, 1));
    expect(() => w.appendAsync(seeded(10, 2))).toThrow(/previous call/);
    await first;
    w.abort();
    w.abort();
    expect(() => w.appendAsync(seeded(10, 2))).toThrow(/finished or aborted/);
  });
});

describe('FileWriter with background writes and SHA-256', () => {
  // More blocks than the writer holds (3 x 8 MiB), in chunks that straddle block boundaries.
  const big = () => [seeded((13 << 20) + 7, 21), seeded(1, 22), seeded((20 << 20) - 3, 23), seeded(9000, 24)];

  for (const mode of ['direct', 'buffered'] as const) {
    it(`${mode}: hashes what it writes, in order`, async () => {
      if (mode === 'buffered') process.env.CORAL_NO_DIRECT_IO = '1';
      const p = fresh('bin');
      const w = new native.FileWriter(p, 0o644, 1);
      expect(w.hashing()).toBe(true); // Node exports its OpenSSL to addons
      for (const c of big()) await w.appendAsync(c);
      expect(w.sha256()).toBe(null); // not before finish
      const want = Buffer.concat(big());
      expect(await w.finish()).toBe(want.length);
      expect(w.sha256()).toBe(sha(want));
      expect(fs.readFileSync(p).equals(want)).toBe(true);
    });
  }

  // Chunks whose address agrees with their file offset modulo 4096 (as checkout places its segments)
  // are written from the caller's buffer: the head completes the block being filled, the aligned
  // middle goes out as it is, the tail starts the next block. Mixed with copied chunks (small ones,
  // a misplaced one) and with blocks filled in between, the file and its digest are the same.
  for (const mode of ['direct', 'buffered'] as const) {
    it(`${mode}: chunks placed at their file offset's alignment are written as they are`, async () => {
      if (mode === 'buffered') process.env.CORAL_NO_DIRECT_IO = '1';
      const placed = (len: number, at: number, seed: number) => {
        const whole = native.allocBuffer(len + 4096); // a pooled mapping: page aligned
        const v = whole.subarray(at % 4096, (at % 4096) + len);
        v.set(seeded(len, seed));
        return v;
      };
      const sizes = [2999, (3 << 20) + 17, 1, (9 << 20) + 4096 - 3, 5000, 8 << 20, (2 << 20) + 5];
      const chunks: Uint8Array[] = [];
      let at = 0;
      sizes.forEach((len, k) => {
        // Every large chunk placed, but the fifth size's neighbour (k === 5) one byte off: copied.
        const c = len >= 1 << 20 ? placed(len, k === 5 ? at + 1 : at, 30 + k) : seeded(len, 30 + k);
        chunks.push(c);
        at += len;
      });
      const p = fresh('bin');
      const w = new native.FileWriter(p, 0o644, 1);
      for (const c of chunks) await w.appendAsync(c);
      const want = Buffer.concat(chunks);
      expect(await w.finish()).toBe(want.length);
      expect(w.sha256()).toBe(sha(want));
      expect(fs.readFileSync(p).equals(want)).toBe(true);
    });
  }

  it('without the flag it does not hash; an empty hashing file has the empty digest', async () => {
    const p = fresh('bin');
    const w = new native.FileWriter(p);
    expect(w.hashing()).toBe(false);
    await w.appendAsync(seeded(100, 1));
    await w.finish();
    expect(w.sha256()).toBe(null);
    const q = fresh('bin');
    const e = new native.FileWriter(q, 0o644, 1);
    await e.finish();
    expect(e.sha256()).toBe(sha(new Uint8Array(0)));
  });

  it('abort while blocks are being written stops cleanly', async () => {
    const p = fresh('bin');
    const w = new native.FileWriter(p, 0o644, 1);
    for (const c of big()) await w.appendAsync(c);
    w.abort();
    expect(w.sha256()).toBe(null);
    expect(() => w.appendAsync(seeded(10, 2))).toThrow(/finished or aborted/);
  });
});

describe('recycleBuffer', () => {
  it('gives back a whole pooled buffer and empties every view of it; anything else is left alone', () => {
    const b = native.allocBuffer(8 << 20);
    b.fill(7);
    const view = new Uint8Array(b.buffer, b.byteOffset, 16);
    expect(native.recycleBuffer(b.subarray(1))).toBe(false);
    expect(native.recycleBuffer(Buffer.alloc(8 << 20))).toBe(false);
    expect(b.length).toBe(8 << 20);
    expect(native.recycleBuffer(b)).toBe(true);
    expect(b.length).toBe(0);
    expect(view.length).toBe(0);
    expect(native.recycleBuffer(b)).toBe(false);
    // The pool hands the memory out again.
    const c = native.allocBuffer(8 << 20);
    c.fill(1);
    expect(c[(8 << 20) - 1]).toBe(1);
  });

  it('decode and pack-read results are recyclable', async () => {
    const p = fresh('h5');
    const data = seeded(6 << 20, 3);
    const w = new native.PackWriter(p);
    await w.putAsync('x', data, { codec: 'raw', dtype: 'U8', shape: [data.length], rawSize: data.length });
    await w.finish();
    const r = new native.PackReader(p);
    const got = await r.read('x');
    expect(Buffer.from(got).equals(data)).toBe(true);
    expect(native.recycleBuffer(got)).toBe(true);
    r.close();
  });
});

describe('pack reads past the reader lock', () => {
  it('serves sync reads of small objects while large reads are under way, each verified', async () => {
    const p = fresh('h5');
    const w = new native.PackWriter(p);
    const big = Array.from({ length: 6 }, (_, i) => seeded((4 << 20) + 4096 * i, 40 + i));
    const small = Array.from({ length: 40 }, (_, i) => seeded(100 + 37 * i, 60 + i));
    for (const [i, b] of big.entries())
      await w.putAsync(`b${i}`, b, { codec: 'raw', dtype: 'U8', shape: [b.byteLength], rawSize: b.byteLength });
    for (const [i, b] of small.entries())
      w.put(`s${i}`, b, { codec: 'raw', dtype: 'U8', shape: [b.byteLength], rawSize: b.byteLength });
    await w.finish();
    const r = new native.PackReader(p);
    for (let round = 0; round < 3; round++) {
      // Large reads into page-aligned pooled memory (the O_DIRECT path) and into new buffers.
      const into = big.map((b) => native.allocBuffer(b.byteLength));
      const large = big.map((_, i) => (i % 2 ? r.read(`b${i}`) : r.readInto(`b${i}`, into[i]).then(() => into[i])));
      for (const [i, b] of small.entries()) expect(r.readSync(`s${i}`).equals(b)).toBe(true);
      const got = await Promise.all(large);
      got.forEach((g, i) => expect(Buffer.from(g.buffer, g.byteOffset, g.byteLength).equals(big[i])).toBe(true));
    }
    // Close while a large read is under way: the read completes, later reads fail cleanly.
    const pending = r.read('b5');
    r.close();
    expect((await pending).equals(big[5])).toBe(true);
    expect(() => r.readSync('s0')).toThrow();
  });
});
