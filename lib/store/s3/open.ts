/**
 * `openS3ObjectStore(url)`: an S3ObjectStore (store.ts) over `s3://<bucket>/<prefix>`, the object store of
 * the bare repository there, usable as the store of a local repository (`Repository.init(dir, { store })`).
 * The store module, and with it the AWS SDK, is loaded on first use, so importing coral stays fast.
 *
 * @example
 * const store = await openS3ObjectStore('s3://models/llama', { endpoint: 'http://127.0.0.1:7480' });
 * const repo = await Repository.init('work', { store });
 */
import { parseS3Url } from './url';
import type { S3ObjectStore, S3ObjectStoreOptions } from './store';

export async function openS3ObjectStore(
  url: string,
  opts: Omit<S3ObjectStoreOptions, 'bucket' | 'prefix' | 'url'> = {},
): Promise<S3ObjectStore> {
  const { bucket, prefix, url: norm } = parseS3Url(url);
  const mod = await import('./store');
  return mod.S3ObjectStore.open({ ...opts, bucket, prefix, url: norm });
}
