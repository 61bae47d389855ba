/**
 * The S3 half of shared-file.ts (loaded on first use, with the AWS SDK): one key, compare-and-swap by
 * ETag (`If-Match` to replace, `If-None-Match: *` to create).
 */
import {
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type ListObjectsV2CommandOutput,
} from '@aws-sdk/client-s3';
import { isNoSuchKey, isPreconditionFailed, openS3Client, s3Error } from '../store/s3/client';

const bare = (etag: string | undefined) => (etag ?? '').replace(/"/g, '');

/** A `SharedFile` (shared-file.ts, which loads this module) over one key. */
export function s3SharedFile(bucket: string, key: string, url: string, endpoint?: string) {
  const s3 = openS3Client({ endpoint });
  const where = `s3://${bucket}/${key}`;
  const err = (e: unknown, op: string) => s3Error(e, url, s3.endpoint, op);
  return {
    where,
    async version() {
      try {
        return bare((await s3.client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }))).ETag);
      } catch (e) {
        if (isNoSuchKey(e)) return null;
        throw err(e, `read of ${key}`);
      }
    },
    async read() {
      try {
        const out = await s3.client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
        return { text: Buffer.from(await out.Body!.transformToByteArray()).toString('utf8'), version: bare(out.ETag) };
      } catch (e) {
        if (isNoSuchKey(e)) return null;
        throw err(e, `read of ${key}`);
      }
    },
    async write(text: string, expected: string | null) {
      try {
        await s3.client.send(
          new PutObjectCommand({
            Bucket: bucket,
            Key: key,
            Body: Buffer.from(text, 'utf8'),
            ...(expected === null ? { IfNoneMatch: '*' } : { IfMatch: expected }),
          }),
        );
        return true;
      } catch (e) {
        if (isPreconditionFailed(e) || (expected !== null && isNoSuchKey(e))) return false;
        throw err(e, `write of ${key}`);
      }
    },
    close() {
      s3.client.destroy();
    },
  };
}

/**
 * The names directly under `prefix` ("" or ending in "/") that hold a bare repository (their marker key
 * `<name>/coral-repo.json`), for the web UI's repository list.
 */
export async function listS3Repos(bucket: string, prefix: string, url: string, endpoint?: string): Promise<string[]> {
  const s3 = openS3Client({ endpoint });
  try {
    const names: string[] = [];
    let token: string | undefined;
    do {
      let page: ListObjectsV2CommandOutput;
      try {
        page = await s3.client.send(
          new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, Delimiter: '/', ContinuationToken: token }),
        );
      } catch (e) {
        throw s3Error(e, url, s3.endpoint, 'listing of repositories');
      }
      for (const p of page.CommonPrefixes ?? []) if (p.Prefix) names.push(p.Prefix.slice(prefix.length, -1));
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    const out: string[] = [];
    for (const n of names) {
      try {
        await s3.client.send(new HeadObjectCommand({ Bucket: bucket, Key: `${prefix}${n}/coral-repo.json` }));
        out.push(n);
      } catch (e) {
        if (!isNoSuchKey(e)) throw s3Error(e, url, s3.endpoint, `read of ${prefix}${n}/coral-repo.json`);
      }
    }
    return out;
  } finally {
    s3.client.destroy();
  }
}
