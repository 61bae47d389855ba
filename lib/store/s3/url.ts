/**
 * `s3://<bucket>/<prefix>` URLs, without the AWS SDK (lib/index.ts loads this eagerly; client.ts and
 * store.ts, which need the SDK, are loaded on first use).
 */
import { invalidParameter } from '../../errors';

/** `s3://<bucket>/<prefix>` → bucket and key prefix ("" or ending in "/"). */
export function parseS3Url(url: string): { bucket: string; prefix: string; url: string } {
  const m = typeof url === 'string' ? /^s3:\/\/([^/?#]+)\/?([^?#]*)$/.exec(url) : null;
  if (!m) throw invalidParameter('url', 's3://<bucket>/<prefix> URL', url);
  const bucket = m[1];
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket))
    throw invalidParameter('url bucket', 'S3 bucket name', bucket);
  const parts = m[2].split('/').filter((p) => p !== '');
  if (parts.some((p) => p === '.' || p === '..')) throw invalidParameter('url prefix', 'path without . or ..', m[2]);
  const prefix = parts.length ? parts.join('/') + '/' : '';
  return { bucket, prefix, url: `s3://${bucket}/${prefix.replace(/\/$/, '')}` };
}
