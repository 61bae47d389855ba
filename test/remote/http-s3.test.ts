// The RemoteRepo conformance suite over http:// when the server keeps its repositories in a bucket
// (`coral serve --store s3://…` on the real Ceph RGW): refs move by the bucket's conditional writes behind
// the server, packs are verified by the server, then published to the bucket.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { openRemote } from '../../lib/remote/open';
import { addToken } from '../../lib/server/access';
import { startServer, type CoralServer } from '../../lib/server/app';
import { ceph, makeBucket } from '../helpers/ceph';
import { runRemoteSuite } from './conformance';

let server: CoralServer;
let token = '';
let tmp = '';
beforeAll(async () => {
  const env = await ceph();
  const store = `s3://${await makeBucket('http')}/served`;
  token = (await addToken({ store, endpoint: env.endpoint }, 'ci', { scope: 'write' })).token;
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'coral-http-s3-'));
  server = await startServer({ store, endpoint: env.endpoint, tmpDir: tmp });
});
afterAll(async () => {
  await server?.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

runRemoteSuite('http (coral serve --store s3://, Ceph RGW)', async () => {
  const url = `${server.url}/r-${crypto.randomBytes(4).toString('hex')}`;
  return {
    remote: await openRemote(url, { token, create: true }),
    another: () => openRemote(url, { token }),
    cleanup: async () => undefined,
  };
});
