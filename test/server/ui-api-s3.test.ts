// The web UI's API over repositories served from a real Ceph bucket (`coral serve --store s3://… --ui`):
// the repository list comes from the bucket's listing (only prefixes holding a bare repository's marker),
// and the graph, commit, diff and storage endpoints read through the S3 transport.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { safetensorsBytes } from '../../bench/lib/ui-repo';
import { openRemote } from '../../lib/remote/open';
import { Repository } from '../../lib/repository';
import { addToken, startServer, type CoralServer } from '../../lib/server/index';
import { ceph, makeBucket, rawClient } from '../helpers/ceph';
import { PutObjectCommand } from '@aws-sdk/client-s3';

let work = '';
let server: CoralServer | null = null;
beforeAll(async () => {
  await ceph();
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'coral-ui-s3-'));
}, 300_000);
afterAll(async () => {
  await server?.close();
  fs.rmSync(work, { recursive: true, force: true });
});

describe('coral serve --ui over a bucket', () => {
  it('lists the bucket prefix repositories and reads them', async () => {
    const bucket = await makeBucket('ui');
    const prefix = `srv-${crypto.randomBytes(3).toString('hex')}`;
    const store = `s3://${bucket}/${prefix}`;
    const dir = path.join(work, 'w');
    fs.mkdirSync(dir);
    const repo = await Repository.init(dir);
    const file = path.join(dir, 'm.safetensors');
    try {
      for (let c = 0; c < 2; c++) {
        fs.writeFileSync(
          file,
          safetensorsBytes([
            ['h.0.w', Float32Array.from({ length: 64 }, (_, i) => i + c)],
            ['h.1.w', Float32Array.from({ length: 64 }, (_, i) => -i)],
          ]),
        );
        await repo.add([file]);
        await repo.commit({ message: `c${c}` });
      }
      await (await openRemote(`${store}/llama`, { create: true })).close();
      await repo.remoteAdd('s3', `${store}/llama`);
      await repo.push('s3');
    } finally {
      await repo.close();
    }
    // A prefix that is not a repository, and the server's own files, are not listed.
    const s3 = await rawClient();
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: `${prefix}/junk/file.txt`, Body: 'x' }));
    const { token } = await addToken({ store }, 'viewer', { scope: 'read' });
    server = await startServer({ store, ui: { dist: work } });
    const get = async (p: string, auth = true) => {
      const res = await fetch(`${server!.url}${p}`, { headers: auth ? { authorization: `Bearer ${token}` } : {} });
      return { status: res.status, body: (await res.json()) as any };
    };
    expect((await get('/api/repos', false)).status).toBe(401);
    expect((await get('/api/repos')).body).toEqual({ repos: [{ name: 'llama' }] });
    const commits = await get('/api/r/llama/commits');
    expect(commits.body.commits.map((c: any) => c.message)).toEqual(['c1\n', 'c0\n']);
    const commit = await get('/api/r/llama/commit/main');
    expect(commit.body.files[0].tensors.map((t: any) => [t.name, typeof t.codec])).toEqual([
      ['h.0.w', 'string'],
      ['h.1.w', 'string'],
    ]);
    const diff = await get('/api/r/llama/diff?a=main~1&b=main');
    expect(diff.body.files[0].tensors.map((t: any) => t.status)).toEqual(['modified', 'unchanged']);
    const storage = await get('/api/r/llama/storage');
    expect(storage.body.objects).toBeGreaterThan(2);
    expect(storage.body.byCommit).toHaveLength(2);
  }, 300_000);
});
