/**
 * Repository ingest and checkout on a multi-GB checkpoint: throughput and peak
 * memory of the real `coral` CLI (one process per command, /usr/bin/time).
 *
 * Workload: a safetensors file of 32 F32 tensors of 64 MiB (2 GiB; --quick:
 * 8 x 16 MiB), trained-like values (bench/lib/weights.ts), each tensor a
 * differently scaled copy of one generated block so nothing deduplicates.
 * A second commit is a fine-tune of every tensor (delta against the parent).
 *
 * Baselines in the same run: `cp` of the file, and `zstd -3 -T2` of the file.
 * Streaming claim: peak RSS stays near the largest tensor times a small
 * constant, not the file size.
 *
 *   npx tsx bench/repo.ts [--quick]
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { argFlag, emitJson, header, median, table } from './lib/harness';
import { trainedLike } from './lib/weights';

const ROOT = path.resolve(__dirname, '..');
const BIN = path.join(ROOT, 'bin', 'coral.js');

interface Timed {
  seconds: number;
  maxRssBytes: number;
}

function timed(cmd: string, args: string[], cwd: string): Timed {
  const r = spawnSync('/usr/bin/time', ['-f', '%e %M', cmd, ...args], {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, NO_COLOR: '1' },
    maxBuffer: 64 << 20,
  });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr}`);
  const last = r.stderr.trim().split('\n').pop()!.split(' ');
  return { seconds: Number(last[0]), maxRssBytes: Number(last[1]) * 1024 };
}

function writeCheckpoint(file: string, tensors: number, elems: number, seed: number, finetune: number): void {
  const rows = 1024;
  const block = trainedLike(rows, elems / rows, seed);
  const names = Array.from({ length: tensors }, (_, i) => `layers.${String(i).padStart(3, '0')}.weight`);
  const hdr: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  names.forEach((n, i) => {
    hdr[n] = { dtype: 'F32', shape: [rows, elems / rows], data_offsets: [i * elems * 4, (i + 1) * elems * 4] };
  });
  let h = Buffer.from(JSON.stringify(hdr));
  h = Buffer.concat([h, Buffer.alloc((8 - (h.length % 8)) % 8, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  const fd = fs.openSync(file, 'w');
  fs.writeSync(fd, len);
  fs.writeSync(fd, h);
  const t = new Float32Array(elems);
  for (let i = 0; i < tensors; i++) {
    const scale = 1 + 0.013 * i;
    for (let j = 0; j < elems; j++) t[j] = block[j] * scale;
    if (finetune) {
      // AdamW-like small update: sign-ish steps of relative size `finetune`.
      for (let j = 0; j < elems; j++)
        t[j] += finetune * 0.03 * (((j * 2654435761) >>> 0) & 1 ? 1 : -1) * Math.abs(block[(j * 7) % elems]);
    }
    fs.writeSync(fd, new Uint8Array(t.buffer));
  }
  fs.fsyncSync(fd);
  fs.closeSync(fd);
}

async function main(): Promise<void> {
  const quick = argFlag('quick');
  const tensors = quick ? 8 : 32;
  const elems = quick ? 4 << 20 : 16 << 20;
  const runs = quick ? 3 : 3;
  const fileBytes = tensors * elems * 4;
  header(
    `repo: ingest and checkout of a ${(fileBytes / 2 ** 30).toFixed(2)} GiB safetensors checkpoint (${tensors} x ${(elems * 4) >> 20} MiB)`,
  );
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'coral-bench-repo-'));
  try {
    const f1 = path.join(work, 'base.safetensors');
    const f2 = path.join(work, 'tuned.safetensors');
    writeCheckpoint(f1, tensors, elems, 11, 0);
    writeCheckpoint(f2, tensors, elems, 11, 1e-3);

    const cp: number[] = [];
    const zstd: number[] = [];
    const add1: Timed[] = [];
    const add2: Timed[] = [];
    const co: Timed[] = [];
    let stored = 0;
    for (let r = 0; r < runs; r++) {
      cp.push(timed('cp', [f1, path.join(work, 'copy.bin')], work).seconds);
      fs.rmSync(path.join(work, 'copy.bin'));
      try {
        zstd.push(timed('zstd', ['-q', '-f', '-3', '-T2', f1, '-o', path.join(work, 'copy.zst')], work).seconds);
        fs.rmSync(path.join(work, 'copy.zst'));
      } catch {
        zstd.push(NaN);
      }
      const repo = path.join(work, `repo${r}`);
      fs.mkdirSync(repo);
      execFileSync(process.execPath, [BIN, 'init'], { cwd: repo });
      const model = path.join(repo, 'model.safetensors');
      fs.copyFileSync(f1, model);
      add1.push(timed(process.execPath, [BIN, 'add', 'model.safetensors'], repo));
      execFileSync(process.execPath, [BIN, 'commit', '-m', 'base'], { cwd: repo });
      fs.copyFileSync(f2, model);
      add2.push(timed(process.execPath, [BIN, 'add', 'model.safetensors'], repo));
      execFileSync(process.execPath, [BIN, 'commit', '-m', 'tuned'], { cwd: repo });
      fs.rmSync(model);
      co.push(timed(process.execPath, [BIN, 'checkout', '-f', 'main', '--', 'model.safetensors'], repo));
      const st = JSON.parse(execFileSync(process.execPath, [BIN, 'stats', '--json'], { cwd: repo, encoding: 'utf8' }));
      stored = st.storedBytes;
      fs.rmSync(repo, { recursive: true, force: true });
    }
    const gb = (s: number) => fileBytes / s / 1e9;
    const med = (xs: Timed[], k: keyof Timed) => median(xs.map((x) => x[k]));
    const rows = [
      { op: 'cp (baseline)', 'median s': median(cp), 'GB/s': gb(median(cp)), 'peak RSS MiB': NaN },
      { op: 'zstd -3 -T2 (baseline)', 'median s': median(zstd), 'GB/s': gb(median(zstd)), 'peak RSS MiB': NaN },
      {
        op: 'coral add (new model)',
        'median s': med(add1, 'seconds'),
        'GB/s': gb(med(add1, 'seconds')),
        'peak RSS MiB': med(add1, 'maxRssBytes') / 2 ** 20,
      },
      {
        op: 'coral add (fine-tune, deltas)',
        'median s': med(add2, 'seconds'),
        'GB/s': gb(med(add2, 'seconds')),
        'peak RSS MiB': med(add2, 'maxRssBytes') / 2 ** 20,
      },
      {
        op: 'coral checkout (delta chain)',
        'median s': med(co, 'seconds'),
        'GB/s': gb(med(co, 'seconds')),
        'peak RSS MiB': med(co, 'maxRssBytes') / 2 ** 20,
      },
    ];
    table(rows);
    const largest = elems * 4;
    const peak = Math.max(med(add1, 'maxRssBytes'), med(add2, 'maxRssBytes'), med(co, 'maxRssBytes'));
    console.log(`ratio coral add / zstd -3 -T2 throughput: ${(median(zstd) / med(add1, 'seconds')).toFixed(2)}x`);
    console.log(`ratio coral checkout / cp throughput:     ${(median(cp) / med(co, 'seconds')).toFixed(2)}x`);
    console.log(
      `peak RSS / largest tensor: ${(peak / largest).toFixed(1)}x; peak RSS / file size: ${(peak / fileBytes).toFixed(2)}x`,
    );
    console.log(
      `stored ${(stored / 2 ** 20).toFixed(0)} MiB for two versions (${((2 * fileBytes) / 2 ** 20).toFixed(0)} MiB logical): ${((2 * fileBytes) / stored).toFixed(2)}x`,
    );
    emitJson('repo', {
      fileBytes,
      tensors,
      tensorBytes: largest,
      runs,
      cpGBps: gb(median(cp)),
      zstdGBps: gb(median(zstd)),
      addGBps: gb(med(add1, 'seconds')),
      addDeltaGBps: gb(med(add2, 'seconds')),
      checkoutGBps: gb(med(co, 'seconds')),
      peakRssBytes: peak,
      peakOverLargestTensor: peak / largest,
      storedBytes: stored,
      ratio: (2 * fileBytes) / stored,
    });
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
