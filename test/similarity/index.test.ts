import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CorruptIndexError, InvalidArgumentError } from '../../lib/errors';
import { fingerprintSync, type Fingerprint } from '../../lib/similarity/fingerprint';
import { SimilarityStore } from '../../lib/similarity/index-file';
import { bandRecall, SimilarityIndex } from '../../lib/similarity/lsh-index';
import { tensor } from '../../lib/tensor/tensor';
import { evaluate, makeFamilies, Rng, rowScaledDelta, trainedLike, variantAt } from './families';

const rng = new Rng(21);
const rows = 128,
  cols = 512; // 65536 elements: sampled at 16384
const base = trainedLike(rng, rows, cols);
const fpOf = (a: Float32Array, shape = [rows, cols]) => fingerprintSync(tensor('F32', shape, a));
const fBase = fpOf(base);
const fNear = fpOf(variantAt(base, rowScaledDelta(rng, base, rows, cols), 0.995));
const fFar = fpOf(trainedLike(rng, rows, cols));

const dirs: string[] = [];
function tmpdir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'coral-sim-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

describe('SimilarityIndex', () => {
  it('meets the recall targets on a seeded family (>= 95% at 0.98, >= 99% at 0.995)', async () => {
    const members = makeFamilies({
      families: 8,
      rows: 128,
      cols: 256,
      cosines: [0.95, 0.98, 0.99, 0.995, 0.999],
      partial: [0.99],
      unrelated: 24,
      seed: 5,
    });
    const r = await evaluate(members, {});
    expect(r.pairs98).toBeGreaterThan(100);
    expect(r.recall98).toBeGreaterThanOrEqual(0.95);
    expect(r.recall995).toBeGreaterThanOrEqual(0.99);
    expect(r.bandRecall98).toBeGreaterThanOrEqual(0.99);
    expect(r.falseBandRate).toBeLessThan(0.01);
    // Theory for the default bands agrees.
    expect(bandRecall(0.98, 256, 16)).toBeGreaterThan(0.998);
  });

  it('ranks by Hamming distance, filters by k and minSimilarity, and removes', () => {
    const idx = SimilarityIndex.create();
    idx.insert('base', fBase);
    idx.insert('near', fNear);
    idx.insert('far', fFar);
    expect(idx.size).toBe(3);
    const hits = idx.query(fBase, { minSimilarity: 0.9, k: 10 });
    expect(hits.map((h) => h.id)).toEqual(['base', 'near']);
    expect(hits[0].similarity).toBe(1);
    expect(hits[1].similarity).toBeGreaterThan(0.97);
    expect(hits[1]).toMatchObject({ dtype: 'F32', shape: [rows, cols], numel: rows * cols });
    expect(idx.query(fBase, { minSimilarity: 0.9, k: 1 }).map((h) => h.id)).toEqual(['base']);
    expect(
      idx
        .query(fBase, { minSimilarity: -1, k: 0, exhaustive: true })
        .map((h) => h.id)
        .sort(),
    ).toEqual(['base', 'far', 'near']);
    expect(idx.remove('near')).toBe(true);
    expect(idx.remove('near')).toBe(false);
    expect(idx.has('near')).toBe(false);
    expect(idx.query(fBase, { minSimilarity: 0.9 }).map((h) => h.id)).toEqual(['base']);
    expect(idx.size).toBe(2);
  });

  it('respects shape, dtype and element-count filters', () => {
    const idx = SimilarityIndex.create();
    idx.insert('a', fBase);
    idx.insert('t', fBase, { dtype: 'F32', shape: [cols, rows] }); // same numel, other shape
    idx.insert('h', fBase, { dtype: 'BF16', shape: [rows, cols] });
    const ids = (o: object) =>
      idx
        .query(fBase, { minSimilarity: 0.9, ...o })
        .map((h) => h.id)
        .sort();
    expect(ids({})).toEqual(['a', 'h']);
    expect(ids({ sameShapeOnly: false })).toEqual(['a', 'h', 't']);
    expect(ids({ sameDtypeOnly: true })).toEqual(['a']);
    // Another element count never matches, whatever the signature.
    const other = fpOf(base.subarray(0, (rows * cols) / 2), [rows / 2, cols]);
    expect(idx.query(other, { minSimilarity: -1, sameShapeOnly: false, exhaustive: true })).toEqual([]);
    expect(() => idx.insert('x', fBase, { dtype: 'F32', shape: [3] })).toThrow(InvalidArgumentError);
    expect(() => idx.insert('x', fingerprintSync(tensor('F32', [rows, cols], base), { bits: 128 }))).toThrow(
      InvalidArgumentError,
    );
  });

  it('scales: thousands of entries with removals and re-inserts stay consistent', () => {
    const idx = SimilarityIndex.create();
    const r = new Rng(99);
    const sig = () => Uint8Array.from({ length: 32 }, () => r.u32() & 0xff);
    const fake = (s: Uint8Array): Fingerprint => ({ ...fBase, signature: s });
    const sigs: Uint8Array[] = [];
    for (let i = 0; i < 5000; i++) {
      sigs.push(sig());
      idx.insert(`e${i}`, fake(sigs[i]));
    }
    for (let i = 0; i < 5000; i += 2) idx.remove(`e${i}`); // triggers compaction
    for (let i = 0; i < 1000; i += 2) idx.insert(`e${i}`, fake(sigs[i]));
    expect(idx.size).toBe(2500 + 500);
    for (const i of [1, 3, 10, 998, 4999]) {
      expect(idx.query(fake(sigs[i]), { minSimilarity: 1, k: 1 })[0]?.id).toBe(`e${i}`);
    }
    expect(idx.query(fake(sigs[4000]), { minSimilarity: 1 })).toEqual([]);
  });

  it('round-trips through serialize / deserialize; corrupt bytes throw CorruptIndexError', () => {
    const idx = SimilarityIndex.create({ bits: 512 });
    const big = fingerprintSync(tensor('F32', [rows, cols], base), { bits: 512 });
    idx.insert('x'.repeat(300), big);
    idx.insert('b', big, { dtype: 'F16', shape: [rows, cols], rms: 2.5 });
    const bytes = idx.serialize();
    const back = SimilarityIndex.deserialize(bytes);
    expect(back.size).toBe(2);
    expect(back.scheme).toBe(idx.scheme);
    expect(back.bandBits).toBe(idx.bandBits);
    expect(back.query(big, { minSimilarity: 0.99 })).toEqual(idx.query(big, { minSimilarity: 0.99 }));
    expect(back.get('b')).toMatchObject({ dtype: 'F16', rms: 2.5 });
    for (const at of [0, 9, 30, bytes.length - 40, bytes.length - 1]) {
      const c = Buffer.from(bytes);
      c[at] ^= 0x40;
      expect(() => SimilarityIndex.deserialize(c)).toThrow(CorruptIndexError);
    }
    expect(() => SimilarityIndex.deserialize(bytes.subarray(0, bytes.length - 9))).toThrow(CorruptIndexError);
    expect(() => SimilarityIndex.deserialize(new Uint8Array(0))).toThrow(CorruptIndexError);
  });

  it('rebuilds from records', async () => {
    const idx = SimilarityIndex.create();
    idx.insert('stale', fFar);
    async function* records() {
      yield { id: 'base', fingerprint: fBase };
      yield { id: 'near', fingerprint: fNear };
    }
    await idx.rebuild(records());
    expect(idx.ids().sort()).toEqual(['base', 'near']);
  });
});

describe('SimilarityStore (persisted, multi-writer)', () => {
  it('survives reopen and merges concurrent writers', async () => {
    const dir = tmpdir();
    const w1 = await SimilarityStore.open(dir);
    const w2 = await SimilarityStore.open(dir);
    await w1.insert('base', fBase);
    await w2.insert('near', fNear);
    await w2.insert('far', fFar);
    await w2.remove('far');
    w1.refresh();
    expect(w1.query(fBase, { minSimilarity: 0.9 }).map((h) => h.id)).toEqual(['base', 'near']);
    await w1.close();
    await w2.close();
    const r = await SimilarityStore.open(dir);
    expect(r.index.ids().sort()).toEqual(['base', 'near']);
    expect(await r.compact()).toBe(true);
    // Sealed, absorbed logs are gone; the snapshot alone holds the state.
    expect(fs.readdirSync(dir).filter((n) => n.endsWith('.csl'))).toEqual([]);
    await r.close();
    const r2 = await SimilarityStore.open(dir);
    expect(r2.index.ids().sort()).toEqual(['base', 'near']);
    await r2.close();
  });

  it('ignores a torn log tail but reports mid-log corruption and a corrupt snapshot', async () => {
    const dir = tmpdir();
    const w = await SimilarityStore.open(dir);
    await w.insert('base', fBase);
    await w.insert('near', fNear);
    await w.flush();
    const log = fs.readdirSync(dir).find((n) => n.endsWith('.csl'))!;
    const full = fs.readFileSync(path.join(dir, log));
    // Torn tail: the last record is cut short (a crash mid-append).
    fs.writeFileSync(path.join(dir, log), full.subarray(0, full.length - 5));
    const r = await SimilarityStore.open(dir);
    expect(r.index.ids()).toEqual(['base']);
    await r.close({ compact: false });
    // A flipped byte inside the first record, with more records after it.
    const bad = Buffer.from(full);
    const firstRecord = 16 + full.readUInt32LE(12) + 4;
    bad[firstRecord + 20] ^= 1;
    fs.writeFileSync(path.join(dir, log), bad);
    await expect(SimilarityStore.open(dir)).rejects.toBeInstanceOf(CorruptIndexError);
    fs.writeFileSync(path.join(dir, log), full);
    // A corrupt snapshot.
    const snap = path.join(dir, 'index.csx');
    const s = fs.readFileSync(snap);
    s[s.length - 3] ^= 0xff;
    fs.writeFileSync(snap, s);
    await expect(SimilarityStore.open(dir)).rejects.toBeInstanceOf(CorruptIndexError);
    await w.close({ compact: false });
  });

  it('bounds the logs many small sessions leave, and a refresh re-reads no sealed log', async () => {
    const dir = tmpdir();
    const logs = () => fs.readdirSync(dir).filter((n) => n.endsWith('.csl'));
    const reader = await SimilarityStore.open(dir);
    const fps = [fBase, fNear, fFar];
    for (let i = 0; i < 100; i++) {
      // One session per small `add`: one record, then a sealed log (compacted by count, not bytes).
      const w = await SimilarityStore.open(dir);
      await w.insert(`e${i}`, fps[i % 3]);
      await w.close();
      expect(logs().length).toBeLessThan(33);
    }
    reader.refresh();
    expect(reader.index.size).toBe(100);
    // Sealed logs already applied are skipped: a log rewritten under the same name is not read again.
    const sealed = logs()[0];
    const before = reader.index.size;
    fs.writeFileSync(path.join(dir, sealed), Buffer.from('garbage'));
    reader.refresh();
    expect(reader.index.size).toBe(before);
    fs.rmSync(path.join(dir, sealed));
    await reader.close({ compact: false });
    const r = await SimilarityStore.open(dir);
    expect(r.index.size).toBeGreaterThan(0);
    await r.close({ compact: false });
  });

  it('rebuild() replaces a corrupt or stale index and keeps later writes', async () => {
    const dir = tmpdir();
    const w = await SimilarityStore.open(dir);
    await w.insert('stale', fFar);
    await w.rebuild([{ id: 'base', fingerprint: fBase }]);
    await w.insert('near', fNear); // after the rebuild: kept
    await w.close({ compact: false });
    const r = await SimilarityStore.open(dir);
    expect(r.index.ids().sort()).toEqual(['base', 'near']);
    await r.close();
  });
});
