// The s3:// transport on a real Ceph RADOS Gateway: repository creation, refs moved by compare-and-swap
// (also under concurrency), meta objects verified on read, damaged bytes detected and named, and the
// typed one-line errors for wrong credentials, a missing bucket and an unreachable endpoint. The one fake
// here is a proxy that drops conditional headers, to show the probe refusing such a server.
import * as crypto from 'node:crypto';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ChecksumMismatchError,
  CorruptObjectError,
  InvalidArgumentError,
  ObjectNotFoundError,
  RefConflictError,
  RemoteAuthError,
  RemoteNotFoundError,
  RemoteUnavailableError,
  RemoteUnsafeError,
} from '../../lib/errors';
import { encodeCommit } from '../../lib/models/commit';
import { sha256Hex } from '../../lib/models/canonical';
import { openS3Remote, parseS3Url } from '../../lib/remote/s3';
import type { RemoteRepo } from '../../lib/remote/transport';
import { S3ObjectStore } from '../../lib/store/s3/store';
import { ceph, flipByte, makeBucket, rawClient, type CephEnv } from '../helpers/ceph';
import { seeded } from '../store/helpers';
import { runRemoteSuite } from './conformance';

let env: CephEnv;
let bucket = '';
const open: RemoteRepo[] = [];
beforeAll(async () => {
  env = await ceph();
  bucket = await makeBucket('remote');
});
afterAll(async () => {
  for (const r of open.splice(0)) await r.close();
});

const fresh = async (create = true) => {
  const r = await openS3Remote(`s3://${bucket}/r-${crypto.randomBytes(4).toString('hex')}`, { create });
  open.push(r);
  return r;
};
const cid = (n: number) => sha256Hex(`commit ${n}`);
const codeOf = (p: Promise<unknown>) =>
  p.then(
    () => 'ok',
    (e: { code?: string; message?: string }) => e.code ?? e.message ?? 'error',
  );

function commitBytes(n: number): Uint8Array {
  const who = { name: 'T', email: 't@example.com', timestamp: 1_700_000_000 + n, tzOffset: 0 };
  return encodeCommit({
    tree: sha256Hex(`tree ${n}`),
    parents: [],
    author: who,
    committer: who,
    message: `c${n}`,
    metadata: {},
  });
}

describe('s3:// remote on Ceph RGW', () => {
  it('parses URLs and rejects malformed ones', () => {
    expect(parseS3Url('s3://bkt/a//b/')).toEqual({ bucket: 'bkt', prefix: 'a/b/', url: 's3://bkt/a/b' });
    expect(parseS3Url('s3://bkt')).toEqual({ bucket: 'bkt', prefix: '', url: 's3://bkt/' });
    for (const bad of ['http://x/y', 's3://', 's3://B_ad/x', 's3://bkt/../x'])
      expect(() => parseS3Url(bad)).toThrow(InvalidArgumentError);
  });

  it('creates a bare repository, and refuses a prefix without one unless asked to create', async () => {
    const prefix = `new-${crypto.randomBytes(4).toString('hex')}`;
    expect(await codeOf(openS3Remote(`s3://${bucket}/${prefix}`))).toBe(RemoteNotFoundError.code);
    const r = await openS3Remote(`s3://${bucket}/${prefix}`, { create: true });
    open.push(r);
    expect(r.transport).toBe('s3');
    expect(r.url).toBe(`s3://${bucket}/${prefix}`);
    expect(await r.headBranch()).toBe('main');
    expect(await r.listRefs()).toEqual(new Map());
    const c = await rawClient();
    const marker = await c.send(new GetObjectCommand({ Bucket: bucket, Key: `${prefix}/coral-repo.json` }));
    expect(JSON.parse(await marker.Body!.transformToString())).toEqual({ format: 'coral-bare-1' });
    c.destroy();
    const again = await openS3Remote(`s3://${bucket}/${prefix}/`);
    open.push(again);
    expect(await again.headBranch()).toBe('main');
  });

  it('moves refs by compare-and-swap: create, update, delete, recreate; stale tokens conflict', async () => {
    const r = await fresh();
    const ref = 'refs/heads/main';
    await r.updateRef(ref, null, cid(1));
    expect(await codeOf(r.updateRef(ref, null, cid(2)))).toBe(RefConflictError.code);
    const v1 = (await r.listRefs()).get(ref)!;
    expect(v1.id).toBe(cid(1));
    expect(v1.token).toMatch(/^[^"]+$/);
    await r.updateRef(ref, v1.token, cid(2));
    expect(await codeOf(r.updateRef(ref, v1.token, cid(3)))).toBe(RefConflictError.code);
    const v2 = (await r.listRefs()).get(ref)!;
    expect(v2.id).toBe(cid(2));
    await r.updateRef('refs/tags/v1', null, cid(1));
    expect([...(await r.listRefs()).keys()]).toEqual(['refs/heads/main', 'refs/tags/v1']);
    // delete
    expect(await codeOf(r.updateRef(ref, v1.token, null))).toBe(RefConflictError.code);
    await r.updateRef(ref, v2.token, null);
    expect([...(await r.listRefs()).keys()]).toEqual(['refs/tags/v1']);
    await r.updateRef(ref, null, null); // already absent: nothing to do
    // recreate over the tombstone
    await r.updateRef(ref, null, cid(4));
    expect((await r.listRefs()).get(ref)!.id).toBe(cid(4));
    expect(await codeOf(r.updateRef('refs/heads/a..b', null, cid(1)))).toBe(InvalidArgumentError.code);
    expect(await codeOf(r.updateRef(ref, null, 'nothex'))).toBe(InvalidArgumentError.code);
  });

  it('lets exactly one of many concurrent updates from one value win', async () => {
    const r = await fresh();
    const others = await Promise.all(Array.from({ length: 5 }, () => openS3Remote(r.url)));
    open.push(...others);
    const ref = 'refs/heads/main';
    // concurrent creates
    let codes = await Promise.all(others.map((o, i) => codeOf(o.updateRef(ref, null, cid(10 + i)))));
    expect(codes.filter((c) => c === 'ok')).toHaveLength(1);
    expect(codes.filter((c) => c === RefConflictError.code)).toHaveLength(4);
    const winner = (await r.listRefs()).get(ref)!;
    expect(winner.id).toBe(cid(10 + codes.indexOf('ok')));
    // concurrent updates from the same token
    codes = await Promise.all(others.map((o, i) => codeOf(o.updateRef(ref, winner.token, cid(20 + i)))));
    expect(codes.filter((c) => c === 'ok')).toHaveLength(1);
    expect((await r.listRefs()).get(ref)!.id).toBe(cid(20 + codes.indexOf('ok')));
    // concurrent deletes and updates from the current token
    const cur = (await r.listRefs()).get(ref)!;
    codes = await Promise.all(others.map((o, i) => codeOf(o.updateRef(ref, cur.token, i % 2 ? null : cid(30 + i)))));
    expect(codes.filter((c) => c === 'ok')).toHaveLength(1);
  });

  it('stores meta objects in the MetaStore form and verifies them on read', async () => {
    const r = await fresh();
    const bytes = commitBytes(1);
    const id = await r.meta.put(bytes);
    expect(id).toBe(sha256Hex(bytes));
    expect(await r.meta.put(bytes)).toBe(id);
    expect(await r.meta.has(id)).toBe(true);
    expect(await r.meta.has(cid(99))).toBe(false);
    expect(Buffer.from(await r.meta.get(id)).equals(Buffer.from(bytes))).toBe(true);
    expect(await codeOf(r.meta.get(cid(99)))).toBe(ObjectNotFoundError.code);
    expect(await codeOf(r.meta.put(Buffer.from('not a meta object')))).not.toBe('ok');
    const { prefix } = parseS3Url(r.url);
    await flipByte(bucket, `${prefix}objects/meta/${id.slice(0, 2)}/${id.slice(2)}`, 10);
    const err = await r.meta.get(id).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CorruptObjectError);
    expect((err as Error).message).toContain(id);
    // put repairs a damaged copy
    expect(await r.meta.put(bytes)).toBe(id);
    expect(Buffer.from(await r.meta.get(id)).equals(Buffer.from(bytes))).toBe(true);
  });

  it('detects a flipped byte in a pack object in the bucket and names the object', async () => {
    const r = await fresh();
    const tx = r.objects.beginWrite();
    const big = seeded(3 << 20, 7);
    await tx.put('victim', big, { codec: 'raw', dtype: 'U8', shape: [big.length], rawSize: big.length });
    await tx.put('bystander', seeded(100, 8), { codec: 'raw', dtype: 'U8', shape: [100], rawSize: 100 });
    const info = (await tx.commit())!;
    const { prefix } = parseS3Url(r.url);
    const stat = await r.objects.stat('victim');
    expect(stat.location).toBe(info.name);
    // The pack as stored: find the object's bytes (offset) by its content and flip one in the middle.
    const c = await rawClient();
    const pack = Buffer.from(
      await (
        await c.send(new GetObjectCommand({ Bucket: bucket, Key: `${prefix}objects/packs/${info.name}` }))
      ).Body!.transformToByteArray(),
    );
    c.destroy();
    const at = pack.indexOf(big.subarray(0, 64));
    expect(at).toBeGreaterThan(0);
    await flipByte(bucket, `${prefix}objects/packs/${info.name}`, at + (1 << 20) + 5);
    const again = await openS3Remote(r.url);
    open.push(again);
    const err = await again.objects.get('victim').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ChecksumMismatchError);
    expect((err as Error).message).toContain('victim');
    expect((err as ChecksumMismatchError).data).toMatchObject({ id: 'victim', pack: info.name });
    expect(Buffer.from((await again.objects.get('bystander')).bytes).equals(seeded(100, 8))).toBe(true);
    expect(await again.objects.verify()).toEqual([
      expect.objectContaining({ kind: 'object', id: 'victim', code: ChecksumMismatchError.code }),
    ]);
  });

  it('streams a pack larger than the part size as a multipart upload, read back by ranges', async () => {
    const b = await makeBucket('mp');
    const store = await S3ObjectStore.open({ bucket: b, prefix: 'x/', partSize: 5 << 20, queueSize: 3 });
    const objs = [seeded(6 << 20, 1), seeded(5 << 20, 2), seeded(123_457, 3)];
    const tx = store.beginWrite();
    for (const [i, o] of objs.entries())
      await tx.put(`mp${i}`, o, { codec: 'raw', dtype: 'U8', shape: [o.length], rawSize: o.length });
    const info = (await tx.commit())!;
    expect(info.bytes).toBeGreaterThan(11 << 20);
    const c = await rawClient();
    const listed = await c.send(new ListObjectsV2Command({ Bucket: b, Prefix: 'x/objects/packs/' }));
    const pack = listed.Contents!.find((o) => o.Key!.endsWith('.h5'))!;
    expect(pack.Size).toBe(info.bytes);
    expect(pack.ETag).toMatch(/-3"?$/); // three parts of 5 MiB at most
    c.destroy();
    const reader = await S3ObjectStore.open({ bucket: b, prefix: 'x/', rangeSize: 1 << 20 });
    for (const [i, o] of objs.entries()) expect(Buffer.from((await reader.get(`mp${i}`)).bytes).equals(o)).toBe(true);
    expect(reader.stats.bytesDownloaded).toBeLessThan(info.bytes + (1 << 20));
    await reader.close();
    await store.close();
  });

  it('reports wrong credentials, a missing bucket and an unreachable endpoint as typed one-line errors', async () => {
    const saved = { ...process.env };
    let e1: unknown;
    try {
      process.env.AWS_SECRET_ACCESS_KEY = 'wrong-secret';
      e1 = await openS3Remote(`s3://${bucket}/x`).catch((e: unknown) => e);
      expect(e1).toBeInstanceOf(RemoteAuthError);
      process.env.AWS_ACCESS_KEY_ID = 'NOSUCHKEY0000000000';
      expect(await codeOf(openS3Remote(`s3://${bucket}/x`))).toBe(RemoteAuthError.code);
    } finally {
      process.env.AWS_ACCESS_KEY_ID = saved.AWS_ACCESS_KEY_ID;
      process.env.AWS_SECRET_ACCESS_KEY = saved.AWS_SECRET_ACCESS_KEY;
    }
    const e2 = await openS3Remote(`s3://no-such-bucket-${crypto.randomBytes(4).toString('hex')}/x`).catch(
      (e: unknown) => e,
    );
    expect(e2).toBeInstanceOf(RemoteNotFoundError);
    expect((e2 as Error).message).toMatch(/bucket does not exist/);
    const closed = await new Promise<number>((resolve) => {
      const s = http.createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    const e3 = await openS3Remote(`s3://${bucket}/x`, { endpoint: `http://127.0.0.1:${closed}` }).catch(
      (e: unknown) => e,
    );
    expect(e3).toBeInstanceOf(RemoteUnavailableError);
    for (const e of [e1, e2, e3]) {
      expect((e as Error).message).not.toContain('\n');
    }
  });

  it('refuses to move refs on a server that ignores conditional writes (probe)', async () => {
    const real = await fresh();
    await real.updateRef('refs/heads/main', null, cid(1));
    const target = new URL(env.endpoint);
    const c = await rawClient();
    // A fake S3 front that performs conditional PUTs unconditionally, as some servers do.
    const proxy = http.createServer((req, res) => {
      const conditional = req.method === 'PUT' && (req.headers['if-none-match'] || req.headers['if-match']);
      if (conditional) {
        const chunks: Buffer[] = [];
        req.on('data', (d: Buffer) => chunks.push(d));
        req.on('end', () => {
          const [, b, ...key] = decodeURIComponent(new URL(req.url!, 'http://x').pathname).split('/');
          c.send(new PutObjectCommand({ Bucket: b, Key: key.join('/'), Body: Buffer.concat(chunks) })).then(
            (out) => res.writeHead(200, { ETag: out.ETag! }).end(),
            () => res.writeHead(500).end(),
          );
        });
        return;
      }
      const fwd = http.request(
        {
          host: target.hostname,
          port: target.port,
          method: req.method,
          path: req.url,
          headers: req.headers,
          agent: false,
        },
        (up) => {
          res.writeHead(up.statusCode!, up.headers);
          up.pipe(res);
        },
      );
      req.pipe(fwd);
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    try {
      const endpoint = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
      const viaFake = await openS3Remote(real.url, { endpoint });
      open.push(viaFake);
      const before = await viaFake.listRefs();
      expect(before.get('refs/heads/main')!.id).toBe(cid(1));
      const err = await viaFake
        .updateRef('refs/heads/main', before.get('refs/heads/main')!.token, cid(2))
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RemoteUnsafeError);
      expect((err as Error).message).toMatch(/does not honour conditional writes/);
      expect(await codeOf(viaFake.updateRef('refs/heads/x', null, cid(2)))).toBe(RemoteUnsafeError.code);
      expect((await real.listRefs()).get('refs/heads/main')!.id).toBe(cid(1));
    } finally {
      proxy.closeAllConnections();
      proxy.close();
      c.destroy();
    }
  });
});

// The transport conformance suite shared with the path transport (test/remote/conformance.ts).
runRemoteSuite('s3:// on Ceph RGW', async () => {
  await ceph();
  const url = `s3://${bucket || (bucket = await makeBucket('remote'))}/conf-${crypto.randomBytes(4).toString('hex')}`;
  const remote = await openS3Remote(url, { create: true });
  const { prefix } = parseS3Url(url);
  return {
    remote,
    another: () => openS3Remote(url),
    corruptObject: async (id: string) => {
      const a = await remote.objects.stat(id);
      const c = await rawClient();
      const key = `${prefix}objects/packs/${a.location!}`;
      const pack = Buffer.from(
        await (await c.send(new GetObjectCommand({ Bucket: bucket, Key: key }))).Body!.transformToByteArray(),
      );
      c.destroy();
      const got = await remote.objects.get(id);
      const at = pack.indexOf(Buffer.from(got.bytes.subarray(0, 64)));
      await flipByte(bucket, key, at + Math.floor(got.bytes.byteLength / 2));
    },
    corruptMeta: (id: string) => flipByte(bucket, `${prefix}objects/meta/${id.slice(0, 2)}/${id.slice(2)}`, 3),
    cleanup: async () => undefined,
  };
});
