/**
 * Ranged reads of one S3 object on a real Ceph RADOS Gateway (scripts/ceph.sh; started here when
 * AWS_ENDPOINT_URL is not set, and stopped again at the end), three ways, alternating in one process:
 *   plain: one `GetObject` of the whole object piped to a local file (bench/remote.ts's baseline);
 *   sdk:   8 MiB ranged `GetObject`s, 8 at a time, each chunk of the body copied into one reused buffer;
 *   into:  the same ranges through lib/store/s3/range-into.ts (the body read straight into the buffer).
 * Per run: GB/s, CPU-seconds of the process and full (mark-compact) garbage collections; medians.
 *
 *   npx tsx bench/s3-ranged.ts [--quick] [--runs N]   (--quick: 128 MiB instead of 512 MiB; default 3 runs)
 */
import * as crypto from 'node:crypto';
import { createWriteStream, promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PerformanceObserver, constants } from 'node:perf_hooks';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { CreateBucketCommand, DeleteObjectCommand, GetObjectCommand } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { openS3Client } from '../lib/store/s3/client';
import { getRangeInto } from '../lib/store/s3/range-into';
import { ensureCeph, stopCeph } from './lib/ceph';
import { argFlag, emitJson, gbps, header, median, table } from './lib/harness';

const RANGE = 8 << 20;
const CONCURRENCY = 8;

let fullGcs = 0;
new PerformanceObserver((list) => {
  for (const e of list.getEntries())
    if ((e as { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) fullGcs++;
}).observe({ entryTypes: ['gc'] });

async function main(): Promise<void> {
  const size = argFlag('quick') ? 128 << 20 : 512 << 20;
  const runsArg = process.argv.indexOf('--runs');
  const runs = runsArg > 0 ? Math.max(1, Number(process.argv[runsArg + 1]) || 3) : 3;
  const started = ensureCeph();
  const s3 = openS3Client({});
  const bucket = `coral-bench-${crypto.randomBytes(4).toString('hex')}`;
  const file = path.join(os.tmpdir(), `coral-bench-s3-ranged-${process.pid}.bin`);
  try {
    header(`s3 ranged reads of a ${size >> 20} MiB object (Ceph RGW ${s3.endpoint})`);
    await s3.client.send(new CreateBucketCommand({ Bucket: bucket }));
    const data = crypto.randomBytes(size);
    await new Upload({
      client: s3.client,
      params: { Bucket: bucket, Key: 'o', Body: data },
      partSize: 16 << 20,
      queueSize: 4,
    }).done();
    const dst = Buffer.alloc(size);
    const starts: number[] = [];
    for (let at = 0; at < size; at += RANGE) starts.push(at);
    const ranges = async (fn: (at: number, end: number) => Promise<void>) => {
      let next = 0;
      await Promise.all(
        Array.from({ length: CONCURRENCY }, async () => {
          while (next < starts.length) {
            const at = starts[next++];
            await fn(at, Math.min(size, at + RANGE));
          }
        }),
      );
    };
    const ways: Record<string, () => Promise<void>> = {
      plain: async () => {
        const out = await s3.client.send(new GetObjectCommand({ Bucket: bucket, Key: 'o' }));
        await pipeline(out.Body as Readable, createWriteStream(file));
      },
      sdk: () =>
        ranges(async (at, end) => {
          const out = await s3.client.send(
            new GetObjectCommand({ Bucket: bucket, Key: 'o', Range: `bytes=${at}-${end - 1}` }),
          );
          let to = at;
          for await (const c of out.Body as Readable) to += (c as Buffer).copy(dst, to);
        }),
      into: () =>
        ranges((at, end) =>
          getRangeInto(s3.client, {
            bucket,
            key: 'o',
            offset: at,
            dst: dst.subarray(at, end),
            connectTimeoutMs: 3000,
            requestTimeoutMs: 120_000,
          }),
        ),
    };
    const got: Record<string, { s: number[]; cpu: number[]; gcs: number[] }> = {};
    for (let run = 0; run < runs; run++)
      for (const [name, fn] of Object.entries(ways)) {
        dst.fill(0);
        fullGcs = 0;
        const c0 = process.cpuUsage();
        const t0 = process.hrtime.bigint();
        await fn();
        const s = Number(process.hrtime.bigint() - t0) / 1e9;
        const c = process.cpuUsage(c0);
        await new Promise((r) => setTimeout(r, 50)); // let the GC entries of the run arrive
        if (name !== 'plain' && !dst.equals(data)) throw new Error(`${name}: the bytes read differ`);
        const g = (got[name] ??= { s: [], cpu: [], gcs: [] });
        g.s.push(s);
        g.cpu.push((c.user + c.system) / 1e6);
        g.gcs.push(fullGcs);
      }
    const rows = Object.entries(got).map(([way, g]) => ({
      way,
      'GB/s': gbps(size, median(g.s)),
      'CPU s': median(g.cpu),
      'full GCs': median(g.gcs),
    }));
    table(rows);
    emitJson('s3-ranged', { size, runs, ...Object.fromEntries(Object.entries(got).map(([k, g]) => [k, g])) });
  } finally {
    await s3.client.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'o' })).catch(() => undefined);
    await fsp.rm(file, { force: true });
    s3.client.destroy();
    if (started) stopCeph();
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
