// The real Ceph RADOS Gateway behind the S3 tests (scripts/ceph.sh). The first S3 test file of a run
// starts the single-node cluster (the script serialises concurrent starts and reuses a running one);
// test/helpers/global-setup.ts stops it at the end of the run if this run started it. When Ceph cannot
// start, the S3 tests fail with the script's output: they are never skipped.
import { execFile } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as path from 'node:path';
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';

const ROOT = path.resolve(__dirname, '..', '..');
export const CEPH_SCRIPT = path.join(ROOT, 'scripts', 'ceph.sh');

export interface CephEnv {
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  /** The AWS_* variables, for child processes. */
  vars: Record<string, string>;
}

let started: Promise<CephEnv> | null = null;

function parseEnv(text: string): Record<string, string> {
  const vars: Record<string, string> = {};
  for (const m of text.matchAll(/^export ([A-Z_]+)=(.*)$/gm)) vars[m[1]] = m[2];
  return vars;
}

/** Starts (or joins) the test cluster and points this process's AWS_* environment at it. */
export function ceph(): Promise<CephEnv> {
  started ??= new Promise<CephEnv>((resolve, reject) => {
    execFile('bash', [CEPH_SCRIPT, 'start'], { timeout: 240_000 }, (err, stdout, stderr) => {
      const vars = parseEnv(stdout);
      if (err || !vars.AWS_ENDPOINT_URL) {
        reject(new Error(`Ceph for the S3 tests did not start (scripts/ceph.sh start): ${err?.message}\n${stderr}`));
        return;
      }
      Object.assign(process.env, vars, { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' });
      resolve({
        endpoint: vars.AWS_ENDPOINT_URL,
        accessKeyId: vars.AWS_ACCESS_KEY_ID,
        secretAccessKey: vars.AWS_SECRET_ACCESS_KEY,
        region: vars.AWS_REGION,
        vars,
      });
    });
  });
  return started;
}

/** A plain SDK client on the test cluster (for setting up and damaging data behind coral's back). */
export async function rawClient(): Promise<S3Client> {
  const env = await ceph();
  return new S3Client({
    endpoint: env.endpoint,
    region: env.region,
    forcePathStyle: true,
    credentials: { accessKeyId: env.accessKeyId, secretAccessKey: env.secretAccessKey },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

/** Creates a bucket with a fresh random name. */
export async function makeBucket(tag = 't'): Promise<string> {
  const c = await rawClient();
  const bucket = `coral-${tag}-${crypto.randomBytes(6).toString('hex')}`;
  await c.send(new CreateBucketCommand({ Bucket: bucket }));
  c.destroy();
  return bucket;
}

/** Flips one byte of `key` at `offset` (downloads the object, rewrites it whole). */
export async function flipByte(bucket: string, key: string, offset: number): Promise<void> {
  const c = await rawClient();
  const out = await c.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  const b = Buffer.from(await out.Body!.transformToByteArray());
  b[offset] ^= 0x5a;
  await c.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: b }));
  c.destroy();
}
