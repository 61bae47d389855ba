/**
 * Content-id hashing throughput on a 1 GiB in-memory tensor.
 * Baselines measured in the same run: a plain Buffer.copy of the same bytes
 * into a pre-faulted buffer (one thread), and `xxhsum -H2` on the same bytes
 * (from tmpfs, whole process). Targets: coral on 1 thread >= Buffer.copy;
 * coral on 2 threads >= 1.6x coral on 1 thread.
 *
 *   npx tsx bench/hash.ts [--quick]
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { native } from '../lib/native';
import { argFlag, emitJson, gbps, header, median, seededBytes, table, timeRuns } from './lib/harness';

async function main(): Promise<void> {
  const quick = argFlag('quick');
  const size = quick ? 64 << 20 : 1 << 30;
  const runs = quick ? 5 : 7;
  header(`hash: content id of a ${size >> 20} MiB F32 tensor`);
  const src = seededBytes(size, 7);
  const dst = Buffer.alloc(size, 1); // pre-faulted
  const shape = [size / 4];

  const copy = median(await timeRuns(() => src.copy(dst), runs));
  const saved = native.threads();
  native.setThreads(1);
  const one = median(await timeRuns(() => native.contentId(src, 1, shape), runs));
  native.setThreads(2);
  const two = median(await timeRuns(() => native.contentIdAsync(src, 1, shape), runs));
  native.setThreads(saved);

  // The same measurement on the portable SSE2 path, in a child process (the ISA
  // is chosen once per process). It shows thread scaling when hashing is
  // compute-bound rather than memory-bound.
  let sse2: { one: number; two: number } | null = null;
  if (!process.env.CORAL_NO_AVX2 && native.features.avx2) {
    const out = execFileSync(process.execPath, [...process.execArgv, __filename, ...process.argv.slice(2), '--child'], {
      env: { ...process.env, CORAL_NO_AVX2: '1' },
      encoding: 'utf8',
    });
    const m = /^JSON (.*)$/m.exec(out);
    if (m) {
      const j = JSON.parse(m[1]);
      sse2 = { one: size / (j.coral1GBps * 1e9), two: size / (j.coral2GBps * 1e9) };
    }
  }
  if (argFlag('child')) {
    emitJson('hash-child', { coral1GBps: gbps(size, one), coral2GBps: gbps(size, two) });
    return;
  }

  let xxhsum = NaN;
  const shm = fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();
  const file = path.join(shm, `coral-bench-${process.pid}`);
  try {
    fs.writeFileSync(file, src);
    xxhsum = median(await timeRuns(() => execFileSync('xxhsum', ['-H2', file]), runs));
  } catch {
    // xxhsum missing: reported as NaN
  } finally {
    fs.rmSync(file, { force: true });
  }

  const rows = [
    { op: 'Buffer.copy (baseline, 1 thread)', size: `${size >> 20} MiB`, 'GB/s': gbps(size, copy), 'median s': copy },
    { op: 'xxhsum -H2 (process, tmpfs)', size: `${size >> 20} MiB`, 'GB/s': gbps(size, xxhsum), 'median s': xxhsum },
    { op: 'coral contentId, 1 thread', size: `${size >> 20} MiB`, 'GB/s': gbps(size, one), 'median s': one },
    { op: 'coral contentId, 2 threads', size: `${size >> 20} MiB`, 'GB/s': gbps(size, two), 'median s': two },
  ];
  if (sse2) {
    rows.push({
      op: 'coral contentId, SSE2 path, 1 thread',
      size: `${size >> 20} MiB`,
      'GB/s': gbps(size, sse2.one),
      'median s': sse2.one,
    });
    rows.push({
      op: 'coral contentId, SSE2 path, 2 threads',
      size: `${size >> 20} MiB`,
      'GB/s': gbps(size, sse2.two),
      'median s': sse2.two,
    });
  }
  table(rows);
  const vsCopy = copy / one;
  const scaling = one / two;
  console.log(`ratio coral(1 thread) / Buffer.copy throughput: ${vsCopy.toFixed(2)}x (target >= 1.0)`);
  console.log(`ratio coral(2 threads) / coral(1 thread):        ${scaling.toFixed(2)}x (target >= 1.6)`);
  if (sse2) console.log(`ratio SSE2 path 2 threads / 1 thread:            ${(sse2.one / sse2.two).toFixed(2)}x`);
  console.log(`ratio coral(2 threads) / xxhsum -H2:             ${(xxhsum / two).toFixed(2)}x`);
  emitJson('hash', {
    sizeBytes: size,
    runs,
    copyGBps: gbps(size, copy),
    xxhsumGBps: gbps(size, xxhsum),
    coral1GBps: gbps(size, one),
    coral2GBps: gbps(size, two),
    sse2Scaling: sse2 ? sse2.one / sse2.two : null,
    ratioVsCopy: vsCopy,
    scaling2Threads: scaling,
  });
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
