/**
 * Object store throughput on one large object, against plain files.
 *   write: LocalPackStore transaction (XXH3 checksum, HDF5 write, fsync, rename, index, dir fsync)
 *          vs fs.promises.writeFile + fsync of the same bytes;
 *   read:  LocalPackStore.get (HDF5 read + checksum verification) vs fs.promises.readFile.
 * Files live under os.tmpdir() (a real disk here); reads hit the page cache on both sides.
 *
 *   npx tsx bench/store.ts [--quick]
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

async function main(): Promise<void> {
  const quick = argFlag('quick');
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
    emitJson('store', {
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

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
