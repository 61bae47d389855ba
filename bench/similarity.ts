/**
 * Near-duplicate detection: recall / precision of the LSH index on generated
 * tensor families, query time and RAM per indexed tensor at scale, and the cost
 * of a fingerprint against a content id on one large tensor (same run).
 *
 * Families (test/similarity/families.ts): trained-like bases (Gaussian, log-normal
 * row scales, outlier columns), variants at exact cosines 0.95 .. 0.999, a
 * partial fine-tune (10% of rows) at 0.99, and unrelated tensors. Every
 * tensor queries the index; truth is the exact cosine.
 *
 *   npx tsx bench/similarity.ts [--quick]
 */
import { native } from '../lib/native';
import { fingerprintSync, type Fingerprint } from '../lib/similarity/fingerprint';
import { bandRecall, defaultBandBits, SimilarityIndex } from '../lib/similarity/lsh-index';
import { evaluate, makeFamilies, Rng, trainedLike } from '../test/similarity/families';
import { argFlag, emitJson, gbps, header, median, table, timeRuns } from './lib/harness';

async function main(): Promise<void> {
  const quick = argFlag('quick');
  header(`similarity: SimHash fingerprints + LSH index${quick ? ' (quick)' : ''}`);

  // ---- 1. cost: fingerprint vs content id on one large tensor ----
  const size = quick ? 32 << 20 : 256 << 20;
  const n = size / 4;
  const big = new Float32Array(n);
  {
    const rng = new Rng(1);
    const rowLen = 4096;
    for (let r = 0; r < n / rowLen; r++) {
      const s = 0.02 * Math.exp(0.5 * rng.gauss());
      for (let c = 0; c < rowLen; c++) big[r * rowLen + c] = (rng.uniform() - 0.5) * s;
    }
  }
  const shape = [n];
  const runs = quick ? 5 : 7;
  const saved = native.threads();
  const cid = median(await timeRuns(() => native.contentIdAsync(big, 1, shape), runs));
  const fp = median(await timeRuns(() => native.simhashAsync(big, 1, shape), runs * 3));
  const fpSync = median(await timeRuns(() => native.simhash(big, 1, shape), runs * 3));
  const fp1024 = median(await timeRuns(() => native.simhashAsync(big, 1, shape, { bits: 1024 }), runs));
  const cos = median(await timeRuns(() => native.cosineAsync(big, 1, big, 1, shape), runs));
  native.setThreads(1);
  const cid1 = median(await timeRuns(() => native.contentId(big, 1, shape), runs));
  const fp1 = median(await timeRuns(() => native.simhash(big, 1, shape), runs * 3));
  native.setThreads(saved);
  const mib = `${size >> 20} MiB`;
  table([
    { op: `contentId (${saved} threads)`, size: mib, 'GB/s': gbps(size, cid), 'median ms': cid * 1e3 },
    { op: 'contentId (1 thread)', size: mib, 'GB/s': gbps(size, cid1), 'median ms': cid1 * 1e3 },
    { op: 'fingerprint 256 bits, async', size: mib, 'GB/s': gbps(size, fp), 'median ms': fp * 1e3 },
    { op: 'fingerprint 256 bits, sync', size: mib, 'GB/s': gbps(size, fpSync), 'median ms': fpSync * 1e3 },
    { op: 'fingerprint 256 bits, 1 thread', size: mib, 'GB/s': gbps(size, fp1), 'median ms': fp1 * 1e3 },
    { op: 'fingerprint 1024 bits, async', size: mib, 'GB/s': gbps(size, fp1024), 'median ms': fp1024 * 1e3 },
    { op: 'exact cosine (a, a), async', size: mib, 'GB/s': gbps(2 * size, cos), 'median ms': cos * 1e3 },
  ]);
  const costRatio = fp / cid;
  console.log(`fingerprint time / contentId time: ${(100 * costRatio).toFixed(2)}% (async, same run)\n`);

  // ---- 2. recall / precision on families ----
  const spec = quick
    ? { families: 10, rows: 128, cols: 512, unrelated: 30 }
    : { families: 40, rows: 256, cols: 1024, unrelated: 120 };
  const members = makeFamilies({ ...spec, cosines: [0.95, 0.98, 0.99, 0.995, 0.999], partial: [0.99], seed: 42 });
  console.log(
    `families: ${spec.families} x (base + 5 variants + partial fine-tune) + ${spec.unrelated} unrelated, ` +
      `${spec.rows}x${spec.cols} F32 each (${members.length} tensors; sampled, maxSamples 16384)`,
  );
  const rows: Array<Record<string, string | number>> = [];
  const results: Record<string, unknown>[] = [];
  const configs: Array<{ bits: number; bandBits?: number; tolerance: number; probes?: 0 | 1 }> = quick
    ? [
        { bits: 128, tolerance: 3 },
        { bits: 256, tolerance: 3 },
        { bits: 256, tolerance: 1.645 },
        { bits: 256, tolerance: 0 },
      ]
    : [
        { bits: 64, tolerance: 3 },
        { bits: 128, tolerance: 3 },
        { bits: 256, tolerance: 3 },
        { bits: 256, tolerance: 1.645 },
        { bits: 256, tolerance: 0 },
        { bits: 256, bandBits: 24, tolerance: 3 },
        { bits: 256, bandBits: 24, tolerance: 3, probes: 1 },
        { bits: 512, tolerance: 3 },
        { bits: 1024, tolerance: 3 },
        { bits: 1024, tolerance: 1.645 },
      ];
  for (const c of configs) {
    const r = await evaluate(
      members,
      { bits: c.bits, bandBits: c.bandBits },
      { tolerance: c.tolerance, probes: c.probes ?? 0 },
    );
    const bb = c.bandBits ?? defaultBandBits(c.bits);
    const bands = Math.floor(c.bits / bb);
    rows.push({
      bits: c.bits,
      bands: `${bands}x${bb}${c.probes ? '+probe' : ''}`,
      tol: c.tolerance,
      'recall>=.98': r.recall98,
      'band recall .98': r.bandRecall98,
      'theory .98': bandRecall(0.98, c.bits, bb, c.probes ?? 0),
      'recall>=.995': r.recall995,
      'prec .98': r.precision98,
      'prec .995': r.precision995,
      'false bucket': r.falseBandRate,
      'query us': r.queryMs * 1e3,
    });
    results.push({ ...c, bandBits: bb, bands, ...r });
  }
  table(rows);
  console.log(`pairs with cosine >= 0.98: ${results[0].pairs98 as number}, >= 0.995: ${results[0].pairs995 as number}`);
  console.log(
    'precision = returned candidates whose exact cosine reaches the threshold; tol = Hamming slack in sigmas\n',
  );

  // ---- 3. scale: RAM per entry, insert and query time ----
  const N = quick ? 20_000 : 200_000;
  const proto = fingerprintSync({
    dtype: 'F32',
    shape: [64, 64],
    data: new Uint8Array(trainedLike(new Rng(3), 64, 64).buffer),
  });
  const rng = new Rng(9);
  const fake = (s: Uint8Array, numel: number): Fingerprint => ({ ...proto, signature: s, numel, shape: [numel] });
  const sizes = [4096, 65536, 1 << 20, 1 << 22, 1 << 24]; // a few tensor sizes, as in a model
  const idx = SimilarityIndex.create();
  const sigs: Uint8Array[] = [];
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) {
    const s = Uint8Array.from({ length: 32 }, () => rng.u32() & 0xff);
    sigs.push(s);
    idx.insert(`${i.toString(16).padStart(32, '0')}`, fake(s, sizes[i % sizes.length]));
  }
  const insertUs = Number(process.hrtime.bigint() - t0) / 1e3 / N;
  const qTimes: number[] = [];
  for (let q = 0; q < 2000; q++) {
    const i = (q * 7919) % N;
    const s = Uint8Array.from(sigs[i]);
    for (let b = 0; b < 8; b++) s[rng.u32() % 32] ^= 1 << (rng.u32() % 8); // ~cosine 0.995
    const a = process.hrtime.bigint();
    idx.query(fake(s, sizes[i % sizes.length]), { minSimilarity: 0.98, k: 5 });
    qTimes.push(Number(process.hrtime.bigint() - a) / 1e3);
  }
  const ser = idx.serialize();
  const t1 = process.hrtime.bigint();
  SimilarityIndex.deserialize(ser);
  const loadMs = Number(process.hrtime.bigint() - t1) / 1e6;
  const ramPerEntry = idx.memoryBytes() / idx.size;
  table([
    {
      entries: N,
      'RAM B/entry': ramPerEntry,
      'file B/entry': ser.byteLength / N,
      'insert us': insertUs,
      'query us (median)': median(qTimes),
      'load ms': loadMs,
    },
  ]);
  console.log('(ids are 32-char content ids; 256-bit signatures, 16 bands of 16 bits)');

  const main256 = results.find((r) => r.bits === 256 && r.tolerance === 3 && r.bandBits === 16)!;
  emitJson('similarity', {
    quick,
    tensorMiB: size >> 20,
    contentIdGBps: gbps(size, cid),
    fingerprintGBps: gbps(size, fp),
    fingerprintCostRatio: costRatio,
    cosineGBps: gbps(2 * size, cos),
    recall98: main256.recall98,
    recall995: main256.recall995,
    precision98: main256.precision98,
    precision995: main256.precision995,
    queryUsFamilies: (main256.queryMs as number) * 1e3,
    scaleEntries: N,
    ramPerEntry,
    fileBytesPerEntry: ser.byteLength / N,
    queryUsAtScale: median(qTimes),
    configs: results,
  });
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
