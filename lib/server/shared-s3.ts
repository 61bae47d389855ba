/**
 * The S3 half of shared-file.ts (loaded on first use, with the AWS SDK): one key, compare-and-swap by
 * ETag (`If-Match` to replace, `If-None-Match: *` to create).
 */
import { GetObjectCommand, HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
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
