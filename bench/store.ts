/**
 * Object store throughput on one large object, against plain files.
 *   write: LocalPackStore transaction (XXH3 checksum, HDF5 write, fsync, rename, index, dir fsync)
 *          vs fs.promises.writeFile + fsync of the same bytes;
 *   read:  LocalPackStore.get (HDF5 read + checksum verification) vs fs.promises.readFile.
 * And the fixed cost of publishing a small pack (what a cast's or a small commit's `add` pays,
 * issue #18): a transaction of 10 objects of ~120 B, committed (HDF5 file, fdatasync, rename,
 * index, directory fsync), vs the least the same protocol costs with a plain file (the same bytes
 * written to a temp file, fdatasync, rename, directory fsync); wall time and CPU time, medians.
 * Files live under os.tmpdir() (a real disk here); reads hit the page cache on both sides.
 *
 *   npx tsx bench/store.ts [--quick] [--small-only]
 */
import { promises as fsp } from 'node:fs';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LocalPackStore } from '../lib/store/local';
import { argFlag, emitJson, gbps, header, median, seededBytes, table } from './lib/harness';

async function timed(fn: () => Promise<unknown>, after: () => Promise<unknown>, runs: number): Promise<number> {
  const xs: number[] = [];
  for (let i = 0; i <= runs; i++) {
    const t0 = process.hrtime.bigint();
    await fn();
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    if (i > 0) xs.push(s); // first run is warm-up
    await after();
  }
  return median(xs);
}

/** Median wall and CPU milliseconds of fn over `runs` runs (after one warm-up). */
async function timedCpu(fn: () => Promise<unknown>, runs: number): Promise<{ wallMs: number; cpuMs: number }> {
  const wall: number[] = [];
  const cpu: number[] = [];
  for (let i = 0; i <= runs; i++) {
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    await fn();
    const c = process.cpuUsage(c0);
    if (i === 0) continue;
    wall.push(Number(process.hrtime.bigint() - t0) / 1e6);
    cpu.push((c.user + c.system) / 1000);
  }
  return { wallMs: median(wall), cpuMs: median(cpu) };
}

/** The fixed cost of publishing a small pack, against a plain file published with the same syncs. */
async function smallPack(runs: number): Promise<Record<string, number>> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'coral-bench-smallpack-'));
  try {
    const objs = Array.from({ length: 10 }, (_, i) => seededBytes(100 + 4 * i, 50 + i));
    const plainDir = path.join(dir, 'plain');
    await fsp.mkdir(plainDir);
    let k = 0;
    const plain = await timedCpu(async () => {
      const tmp = path.join(dir, `p${k}.tmp`);
      const fh = await fsp.open(tmp, 'wx');
      await fh.writeFile(Buffer.concat(objs));
      await fh.datasync();
      await fh.close();
      await fsp.rename(tmp, path.join(plainDir, `p${k++}`));
      const d = await fsp.open(plainDir, 'r');
      await d.sync();
      await d.close();
    }, runs);
    const store = await LocalPackStore.open(path.join(dir, 'repo'));
    let n = 0;
    const coral = await timedCpu(async () => {
      const tx = store.beginWrite();
      for (const o of objs)
        await tx.put(`small${n++}`, o, { codec: 'raw', dtype: 'U8', shape: [o.length], rawSize: o.length });
      await tx.commit();
    }, runs);
    await store.close();
    return {
      runs,
      plainWallMs: plain.wallMs,
      plainCpuMs: plain.cpuMs,
      coralWallMs: coral.wallMs,
      coralCpuMs: coral.cpuMs,
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const quick = argFlag('quick');
  if (argFlag('small-only')) {
    header('store: publishing a small pack (10 objects of ~120 B)');
    const sp = await smallPack(quick ? 10 : 30);
    printSmall(sp);
    emitJson('store', { smallPack: sp });
    return;
  }
  const size = quick ? 128 << 20 : 1 << 30;
  const runs = quick ? 3 : 5;
  header(`store: one ${size >> 20} MiB object, write and verified read`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'coral-bench-store-'));
  const data = seededBytes(size, 3);
  const attrs = { codec: 'raw', dtype: 'U8', shape: [size], rawSize: size };
  try {
    const file = path.join(dir, 'plain.bin');
    const writePlain = await timed(
      async () => {
        const fh = await fsp.open(file, 'w');
        await fh.writeFile(data);
        await fh.sync();
        await fh.close();
      },
      () => fsp.rm(file, { force: true }),
      runs,
    );

    const store = await LocalPackStore.open(path.join(dir, 'repo'));
    let n = 0;
    const writeCoral = await timed(
      async () => {
        const tx = store.beginWrite();
        await tx.put(`obj${n++}`, data, attrs);
        await tx.commit();
      },
      () => store.repack(() => false),
      runs,
    );

    // Reads: one resident file / pack each.
    await fsp.writeFile(file, data);
    const tx = store.beginWrite();
    await tx.put('resident', data, attrs);
    await tx.commit();
    const readPlain = await timed(
      () => fsp.readFile(file),
      async () => undefined,
      runs,
    );
    const readCoral = await timed(
      () => store.get('resident'),
      async () => undefined,
      runs,
    );
    await store.close();

    const sz = `${size >> 20} MiB`;
    table([
      {
        op: 'write: fs writeFile + fsync (baseline)',
        size: sz,
        'GB/s': gbps(size, writePlain),
        'median s': writePlain,
      },
      { op: 'write: coral pack commit (fsync)', size: sz, 'GB/s': gbps(size, writeCoral), 'median s': writeCoral },
      { op: 'read: fs readFile (baseline)', size: sz, 'GB/s': gbps(size, readPlain), 'median s': readPlain },
      { op: 'read: coral get (verified)', size: sz, 'GB/s': gbps(size, readCoral), 'median s': readCoral },
    ]);
    console.log(`ratio coral/baseline write throughput: ${(writePlain / writeCoral).toFixed(2)}x`);
    console.log(`ratio coral/baseline read throughput:  ${(readPlain / readCoral).toFixed(2)}x`);
    const sp = await smallPack(quick ? 10 : 30);
    printSmall(sp);
    emitJson('store', {
      smallPack: sp,
      sizeBytes: size,
      runs,
      writePlainGBps: gbps(size, writePlain),
      writeCoralGBps: gbps(size, writeCoral),
      readPlainGBps: gbps(size, readPlain),
      readCoralGBps: gbps(size, readCoral),
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function printSmall(sp: Record<string, number>): void {
  table([
    {
      op: 'small publish: plain file, fdatasync + rename + dir fsync (baseline)',
      'wall ms': sp.plainWallMs,
      'cpu ms': sp.plainCpuMs,
    },
    { op: 'small publish: coral pack commit (10 objects)', 'wall ms': sp.coralWallMs, 'cpu ms': sp.coralCpuMs },
  ]);
  console.log(
    `ratio coral/baseline small publish: wall ${(sp.coralWallMs / sp.plainWallMs).toFixed(2)}x, cpu ${(sp.coralCpuMs / sp.plainCpuMs).toFixed(2)}x`,
  );
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
