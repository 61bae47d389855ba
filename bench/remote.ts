/**
 * Push and clone over s3:// on a real Ceph RADOS Gateway (scripts/ceph.sh; started here when
 * AWS_ENDPOINT_URL is not set, and stopped again at the end), against the plain SDK in the same run:
 *   push:  `Repository.push` of a checkpoint family (a base and a full fine-tune, safetensors F32) to a
 *          new s3:// prefix  vs  lib-storage `Upload` of the same number of bytes (same part size and
 *          parallelism) to the same bucket;
 *   clone: `Repository.clone --no-checkout` of that prefix  vs  `GetObject` of the plain object into a
 *          local file (the clone also writes a local pack);
 *   fine-tune push: a further fine-tune committed locally, then pushed: bytes the push added to the
 *          bucket (every new key) vs the stored bytes of the objects the commit added locally.
 * Medians of several runs; each run uses a fresh prefix, deleted afterwards (the OSD keeps data in RAM).
 *
 *   npx tsx bench/remote.ts [--quick] [--runs N]   (--quick: a 256 MiB family instead of 1 GiB; N runs, default 3)
 */
import * as crypto from 'node:crypto';
import { createWriteStream, promises as fsp } from 'node:fs';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  CreateBucketCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { writeSafetensors } from '../lib/formats';
import { Repository } from '../lib/repository';
import { tensor } from '../lib/tensor/tensor';
import { ensureCeph, stopCeph } from './lib/ceph';
import { argFlag, emitJson, gbps, header, median, seededBytes, table } from './lib/harness';
import { fineTune, trainedLike } from './lib/weights';

const PART = 16 << 20;
const QUEUE = 4;

async function timed<T>(fn: () => Promise<T>): Promise<{ s: number; value: T }> {
  const t0 = process.hrtime.bigint();
  const value = await fn();
  return { s: Number(process.hrtime.bigint() - t0) / 1e9, value };
}

/** Writes one checkpoint of `layers` tensors of rows x cols F32. */
async function writeModel(file: string, ws: Float32Array[], cols: number): Promise<void> {
  const tensors: Record<string, ReturnType<typeof tensor>> = {};
  ws.forEach(
    (w, i) => (tensors[`layers.${i}.weight`] = tensor('F32', [w.length / cols, cols], new Uint8Array(w.buffer))),
  );
  await writeSafetensors(file, tensors);
}

async function storedSizes(repo: Repository): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for await (const a of repo.store.list()) out.set(a.id, a.storedSize);
  return out;
}

async function main(): Promise<void> {
  const quick = argFlag('quick');
  const familyBytes = quick ? 256 << 20 : 1 << 30; // two checkpoints (base + fine-tune)
  const runsArg = process.argv.indexOf('--runs');
  const runs = runsArg > 0 ? Math.max(1, Number(process.argv[runsArg + 1]) || 3) : 3;
  const started = ensureCeph();
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
  const endpoint = process.env.AWS_ENDPOINT_URL!;
  const s3 = new S3Client({
    endpoint,
    forcePathStyle: true,
    region: process.env.AWS_REGION ?? 'us-east-1',
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  const bucket = `coral-bench-${crypto.randomBytes(4).toString('hex')}`;
  await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'coral-bench-remote-'));

  const dropPrefix = async (prefix: string) => {
    for (;;) {
      const l = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
      const keys = (l.Contents ?? []).map((o) => ({ Key: o.Key! }));
      if (!keys.length) return;
      await s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys, Quiet: true } }));
    }
  };
  const prefixBytes = async (prefix: string) => {
    const m = new Map<string, number>();
    let token: string | undefined;
    do {
      const l = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
      for (const o of l.Contents ?? []) m.set(o.Key!, o.Size ?? 0);
      token = l.IsTruncated ? l.NextContinuationToken : undefined;
    } while (token);
    return m;
  };

  try {
    header(`remote: push / clone of a ${familyBytes >> 20} MiB checkpoint family over s3:// (Ceph RGW ${endpoint})`);
    // The family: base + full fine-tune, each half of familyBytes, in 8 tensors.
    const cols = 2048;
    const layers = 8;
    const rows = Math.floor(familyBytes / 2 / layers / cols / 4);
    const base = Array.from({ length: layers }, (_, i) => trainedLike(rows, cols, 100 + i));
    const ft1 = base.map((w, i) => fineTune(w, 1e-3, 200 + i, cols));
    const src = path.join(dir, 'src');
    const repo = await Repository.init(src);
    const model = path.join(src, 'model.safetensors');
    await writeModel(model, base, cols);
    await repo.add([model]);
    await repo.commit({ message: 'base' });
    await writeModel(model, ft1, cols);
    await repo.add([model]);
    await repo.commit({ message: 'fine-tune 1' });

    const rows1: Array<Record<string, string | number>> = [];
    const pushS: number[] = [];
    const plainUpS: number[] = [];
    const cloneS: number[] = [];
    const plainDownS: number[] = [];
    let moved = 0;
    for (let run = 0; run < runs; run++) {
      const prefix = `push-${run}-${crypto.randomBytes(3).toString('hex')}`;
      const url = `s3://${bucket}/${prefix}`;
      await repo.remoteAdd(`r${run}`, url, { endpoint });
      const p = await timed(() => repo.push(`r${run}`, { refspecs: ['main'] }));
      moved = p.value.bytes;
      pushS.push(p.s);
      // The same number of bytes through the plain SDK.
      const plainKey = `plain-${run}`;
      const data = seededBytes(moved, run + 1);
      const up = await timed(async () => {
        await new Upload({
          client: s3,
          params: { Bucket: bucket, Key: plainKey, Body: data },
          partSize: PART,
          queueSize: QUEUE,
        }).done();
      });
      plainUpS.push(up.s);
      const cdir = path.join(dir, `clone-${run}`);
      const c = await timed(() => Repository.clone(url, cdir, { endpoint, noCheckout: true }));
      await c.value.repository.close();
      cloneS.push(c.s);
      const file = path.join(dir, `plain-${run}.bin`);
      const down = await timed(async () => {
        const out = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: plainKey }));
        await pipeline(out.Body as Readable, createWriteStream(file));
      });
      plainDownS.push(down.s);
      await fsp.rm(cdir, { recursive: true, force: true });
      await fsp.rm(file, { force: true });
      await dropPrefix(plainKey);
      if (run < runs - 1) await dropPrefix(prefix + '/');
    }
    const push = median(pushS);
    const plainUp = median(plainUpS);
    const clone = median(cloneS);
    const plainDown = median(plainDownS);
    rows1.push(
      {
        op: 'push',
        MiB: moved / 2 ** 20,
        'plain GB/s': gbps(moved, plainUp),
        'coral GB/s': gbps(moved, push),
        ratio: plainUp / push,
      },
      {
        op: 'clone',
        MiB: moved / 2 ** 20,
        'plain GB/s': gbps(moved, plainDown),
        'coral GB/s': gbps(moved, clone),
        ratio: plainDown / clone,
      },
    );

    // Fine-tune push: what the push adds to the bucket vs what the commit added locally.
    const last = `push-${runs - 1}`;
    const prefix = (await prefixBytes(`${last}-`)).keys().next().value!.split('/')[0];
    const before = await storedSizes(repo);
    const ft2 = ft1.map((w, i) => fineTune(w, 1e-3, 300 + i, cols));
    await writeModel(model, ft2, cols);
    await repo.add([model]);
    await repo.commit({ message: 'fine-tune 2' });
    const after = await storedSizes(repo);
    let delta = 0;
    for (const [id, n] of after) if (!before.has(id)) delta += n;
    const keysBefore = await prefixBytes(prefix + '/');
    const ftPush = await repo.push(`r${runs - 1}`, { refspecs: ['main'] });
    const keysAfter = await prefixBytes(prefix + '/');
    let added = 0;
    for (const [k, n] of keysAfter) if (!keysBefore.has(k) && !k.includes('/refs/')) added += n;
    rows1.push({
      op: 'fine-tune push',
      MiB: added / 2 ** 20,
      'plain GB/s': '-',
      'coral GB/s': '-',
      ratio: added / delta,
    });
    table(rows1);
    console.log(
      `# fine-tune: stored delta ${(delta / 2 ** 20).toFixed(2)} MiB locally, push added ${(added / 2 ** 20).toFixed(2)} MiB ` +
        `to the bucket (${ftPush.objects} objects + ${ftPush.metas} meta objects + pack index); target <= 1.02x`,
    );
    console.log('# targets: push >= 0.8x and clone >= 0.8x of the plain SDK transfer');
    emitJson('remote', {
      familyBytes,
      movedBytes: moved,
      runs,
      pushS: push,
      plainUploadS: plainUp,
      cloneS: clone,
      plainDownloadS: plainDown,
      pushRatio: plainUp / push,
      cloneRatio: plainDown / clone,
      fineTuneDeltaBytes: delta,
      fineTuneBucketBytes: added,
      fineTuneRatio: added / delta,
    });
    await repo.close();
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
    s3.destroy();
    if (started) stopCeph();
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
