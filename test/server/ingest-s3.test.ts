// Scale-out on a real Ceph RADOS Gateway: two fastify instances with the ingest route over one bucket
// prefix (each with its own S3 client, store view and caches, as two server processes would have),
// concurrent uploads into one branch through both: every upload is a commit, none lost, and the bucket's
// repository clones byte-exact and passes fsck. A retry through the other server with the same
// idempotency key is not committed again.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openS3Remote } from '../../lib/remote/s3';
import { Repository } from '../../lib/repository';
import { ceph, makeBucket } from '../helpers/ceph';
import { family, writeModel } from '../remote/helpers';
import { ingestUrl, post, startServer, type TestServer } from './ingest-helpers';

let bucket = '';
let work = '';
const servers: TestServer[] = [];
beforeAll(async () => {
  await ceph();
  bucket = await makeBucket('serve');
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'coral-serve-s3-'));
}, 300_000);
afterAll(async () => {
  for (const s of servers.splice(0)) await s.close();
  fs.rmSync(work, { recursive: true, force: true });
});

describe('two servers over one Ceph bucket', () => {
  it('concurrent ingests into one branch through both: all commits present', async () => {
    const base = `s3://${bucket}/srv-${crypto.randomBytes(3).toString('hex')}`;
    await (await openS3Remote(`${base}/llama`, { create: true })).close();
    const a = await startServer(base);
    servers.push(a);
    const b = await startServer(base);
    servers.push(b);
    const files = Array.from({ length: 8 }, (_, i) => {
      const f = path.join(work, `m${i}.safetensors`);
      writeModel(f, family(i % 3, 60 + i));
      return fs.readFileSync(f);
    });
    const replies = await Promise.all(
      files.map((bytes, i) =>
        post(ingestUrl((i % 2 ? b : a).url, 'llama', { path: `ckpt/m${i}.safetensors`, step: i }), bytes, {
          'idempotency-key': `s3-${i}`,
        }),
      ),
    );
    for (const r of replies) expect(r.status, JSON.stringify(r.body)).toBe(201);
    // A retry of upload 0 through the other server: the commit made through the first.
    const retry = await post(ingestUrl(b.url, 'llama', { path: 'ckpt/m0.safetensors' }), files[0], {
      'idempotency-key': 's3-0',
    });
    expect(retry).toMatchObject({ status: 200, body: { duplicate: true, commit: replies[0].body.commit } });

    const { repository } = await Repository.clone(`${base}/llama`, path.join(work, 'clone'));
    try {
      const log = await repository.log({ firstParent: true });
      expect(log.length).toBe(8);
      expect(new Set(log.map((e) => e.id))).toEqual(new Set(replies.map((r) => r.body.commit)));
      files.forEach((bytes, i) =>
        expect(fs.readFileSync(path.join(repository.worktree, 'ckpt', `m${i}.safetensors`)).equals(bytes)).toBe(true),
      );
      expect((await repository.fsck()).ok).toBe(true);
    } finally {
      await repository.close();
    }
  }, 300_000);
});
