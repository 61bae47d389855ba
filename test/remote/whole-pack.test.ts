// Whole packs (lib/store/pack-stream.ts, copyPack in lib/remote/negotiate.ts): when the receiver wants
// every object of one of the sender's packs, the pack goes over as it is, byte for byte, verified as it
// streams. Over a path remote and over S3 on the real Ceph RADOS Gateway: the packs on the other side are
// byte-identical, clones check out byte for byte and pass fsck, a fine-tune sends only its own pack, and
// a flipped byte in a whole pack stops a clone or a fetch, named, with nothing of the pack written.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChecksumMismatchError, CorruptObjectError } from '../../lib/errors';
import { Repository } from '../../lib/repository';
import { initBare } from '../../lib/remote/file';
import { native } from '../../lib/native';
import { LocalPackStore } from '../../lib/store/local';
import { sha256 } from '../helpers/cli';
import { ceph, flipByte, makeBucket, rawClient } from '../helpers/ceph';
import { perturb, weights } from '../helpers/cli';
import { packCount, storedObjects, writeModel } from './helpers';

/** 2.5 Mi F32 elements per tensor: each version's pack is above the 4 MiB whole-pack threshold. */
const BIG = 5 * 512 * 1024;

function big(step: number): Record<string, Float32Array> {
  let w = weights(BIG, 7);
  for (let s = 1; s <= step; s++) w = perturb(w, 70 + s, 1e-3, 1);
  return { 'layer.weight': w, 'layer.bias': weights(1024, 8 + step) };
}

const dirs: string[] = [];
const tmp = () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'coral-wholepack-'));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

/** A repository with a base and a fine-tune, each commit in a pack of its own. */
async function twoVersions(dir: string): Promise<{ repo: Repository; model: string; files: string[] }> {
  const repo = await Repository.init(path.join(dir, 'a'));
  const model = path.join(repo.worktree, 'model.safetensors');
  const files: string[] = [];
  for (const step of [0, 1]) {
    writeModel(model, big(step));
    await repo.add([model]);
    await repo.commit({ message: `step ${step}` });
    files.push(sha256(model));
  }
  return { repo, model, files };
}

/** sha256 of every pack file of a repository directory. */
function packHashes(coral: string): string[] {
  const dir = path.join(coral, 'objects', 'packs');
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.h5'))
    .map((f) => sha256(path.join(dir, f)))
    .sort();
}

describe('whole packs over a path remote', () => {
  it('push and clone move packs byte for byte; the clone checks out and passes fsck', async () => {
    const d = tmp();
    const { repo, model, files } = await twoVersions(d);
    const local = packHashes(path.join(repo.worktree, '.coral'));
    expect(local.length).toBe(2);
    const hub = await initBare(path.join(d, 'hub.coral'));
    await repo.remoteAdd('origin', hub);
    const r = await repo.push('origin', { refspecs: ['main'] });
    expect(r.packs.length).toBe(2);
    expect(packHashes(hub)).toEqual(local);
    const c = (await Repository.clone(hub, path.join(d, 'c'))).repository;
    expect(sha256(path.join(c.worktree, 'model.safetensors'))).toBe(files[1]);
    expect(packHashes(path.join(c.worktree, '.coral'))).toEqual(local);
    expect((await c.fsck()).ok).toBe(true);
    await c.checkout('HEAD~1', { force: true });
    expect(sha256(path.join(c.worktree, 'model.safetensors'))).toBe(files[0]);
    await c.close();
    // A further fine-tune: its own pack, and nothing else, goes over.
    writeModel(model, big(2));
    await repo.add([model]);
    await repo.commit({ message: 'step 2' });
    const r2 = await repo.push('origin');
    expect(r2.packs.length).toBe(1);
    expect(packCount(hub)).toBe(3);
    expect((await repo.push('origin')).objects).toBe(0);
    await repo.close();
  });

  it('a flipped byte in a whole pack stops the fetch, named; nothing of the pack is written and no ref moves', async () => {
    const d = tmp();
    const { repo } = await twoVersions(d);
    const hub = await initBare(path.join(d, 'hub.coral'));
    await repo.remoteAdd('origin', hub);
    await repo.push('origin', { refspecs: ['main'] });
    // Damage the middle of the largest object of one of the hub's packs.
    const store = await LocalPackStore.open(hub);
    const pack = store.packListing()[0];
    const victim = [...pack.entries].sort((a, b) => b.size - a.size)[0];
    await store.close();
    const file = path.join(hub, 'objects', 'packs', pack.name);
    const fd = fs.openSync(file, 'r+');
    const at = victim.offset! + Math.floor(victim.size / 2);
    const one = Buffer.alloc(1);
    fs.readSync(fd, one, 0, 1, at);
    one[0] ^= 0x5a;
    fs.writeSync(fd, one, 0, 1, at);
    fs.closeSync(fd);
    // A clone fails naming the object, and leaves no directory behind.
    const err = await Repository.clone(hub, path.join(d, 'c')).then(
      () => null,
      (e: { code?: string; message: string }) => e,
    );
    expect(err?.code).toBe(ChecksumMismatchError.code);
    expect(err?.message).toContain(victim.id);
    expect(fs.existsSync(path.join(d, 'c'))).toBe(false);
    // A fetch into an empty repository: the same error; nothing of the damaged pack is stored (a sound
    // pack that arrived whole before it may stay, for a rerun to reuse), no temp file, no tracking ref.
    const b = await Repository.init(path.join(d, 'b'));
    await b.remoteAdd('origin', hub);
    await expect(b.fetch('origin')).rejects.toMatchObject({ code: ChecksumMismatchError.code });
    const got = await storedObjects(path.join(b.worktree, '.coral'));
    for (const e of pack.entries) expect(got.has(e.id), `object ${e.id} of the damaged pack`).toBe(false);
    expect(fs.readdirSync(path.join(b.worktree, '.coral', 'tmp')).filter((f) => f.startsWith('pack-'))).toEqual([]);
    expect(await b.refs.readRef('refs/remotes/origin/main')).toBeNull();
    await b.close();
    await repo.close();
  });
  it('an object whose bytes are another object (checksum intact) stops a clone, named as damaged', async () => {
    const d = tmp();
    const { repo } = await twoVersions(d);
    const hub = await initBare(path.join(d, 'hub.coral'));
    await repo.remoteAdd('origin', hub);
    await repo.push('origin', { refspecs: ['main'] });
    // Forge one of the hub's packs: the smallest object's bytes are replaced by another object's, and
    // the pack is rewritten so that every checksum matches the (wrong) bytes.
    const store = await LocalPackStore.open(hub);
    const pack = store.packListing().sort((a, b) => b.size - a.size)[0];
    const bySize = [...pack.entries].sort((a, b) => a.size - b.size);
    const [victim, donor] = [bySize[0], bySize[1]];
    const forged = path.join(hub, 'objects', 'packs', `pack-${crypto.randomBytes(16).toString('hex')}.h5`);
    const w = new native.PackWriter(forged, { smallObjectMax: 0 });
    for (const e of pack.entries) {
      const { bytes } = await store.get(e.id === victim.id ? donor.id : e.id);
      await w.putAsync(e.id, bytes, e);
    }
    await w.finish();
    await store.close();
    for (const ext of ['.h5', '.idx']) fs.rmSync(path.join(hub, 'objects', 'packs', pack.name.replace('.h5', ext)));
    const err = await Repository.clone(hub, path.join(d, 'c')).then(
      () => null,
      (e: { code?: string; message: string }) => e,
    );
    expect(err?.code).toBe(CorruptObjectError.code);
    expect(err?.message).toContain(victim.id);
    expect(fs.existsSync(path.join(d, 'c'))).toBe(false);
    await repo.close();
  });
});

describe('whole packs over S3 (Ceph RGW)', () => {
  let bucket = '';
  let endpoint = '';
  beforeAll(async () => {
    endpoint = (await ceph()).endpoint;
    bucket = await makeBucket('wholepack');
  });

  async function bucketPacks(prefix: string): Promise<Array<{ key: string; size: number }>> {
    const c = await rawClient();
    try {
      const l = await c.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: `${prefix}/objects/packs/` }));
      return (l.Contents ?? []).filter((o) => o.Key!.endsWith('.h5')).map((o) => ({ key: o.Key!, size: o.Size ?? 0 }));
    } finally {
      c.destroy();
    }
  }

  it('push streams local packs as they are; clone and a fine-tune fetch bring them back byte for byte', async () => {
    const d = tmp();
    const { repo, model, files } = await twoVersions(d);
    const local = packHashes(path.join(repo.worktree, '.coral'));
    const prefix = `p-${crypto.randomBytes(4).toString('hex')}`;
    const url = `s3://${bucket}/${prefix}`;
    await repo.remoteAdd('origin', url, { endpoint });
    const r = await repo.push('origin', { refspecs: ['main'] });
    expect(r.packs.length).toBe(2);
    const localSizes = fs
      .readdirSync(path.join(repo.worktree, '.coral', 'objects', 'packs'))
      .filter((f) => f.endsWith('.h5'))
      .map((f) => fs.statSync(path.join(repo.worktree, '.coral', 'objects', 'packs', f)).size)
      .sort();
    expect((await bucketPacks(prefix)).map((p) => p.size).sort()).toEqual(localSizes);
    const c = (await Repository.clone(url, path.join(d, 'c'), { endpoint })).repository;
    expect(sha256(path.join(c.worktree, 'model.safetensors'))).toBe(files[1]);
    expect(packHashes(path.join(c.worktree, '.coral'))).toEqual(local);
    expect((await c.fsck()).ok).toBe(true);
    // A fine-tune pushed from the first repository arrives in the clone as one more identical pack.
    writeModel(model, big(2));
    await repo.add([model]);
    await repo.commit({ message: 'step 2' });
    expect((await repo.push('origin')).packs.length).toBe(1);
    const f = await c.fetch('origin');
    expect(f.packs.length).toBe(1);
    expect(packHashes(path.join(c.worktree, '.coral'))).toEqual(packHashes(path.join(repo.worktree, '.coral')));
    await c.pull('origin');
    expect(sha256(path.join(c.worktree, 'model.safetensors'))).toBe(sha256(model));
    expect((await c.fsck()).ok).toBe(true);
    await c.close();
    await repo.close();
  });

  it('a flipped byte in a whole pack in the bucket stops a clone, named; nothing is left behind', async () => {
    const d = tmp();
    const { repo } = await twoVersions(d);
    const prefix = `p-${crypto.randomBytes(4).toString('hex')}`;
    const url = `s3://${bucket}/${prefix}`;
    await repo.remoteAdd('origin', url, { endpoint });
    await repo.push('origin', { refspecs: ['main'] });
    const packs = await bucketPacks(prefix);
    const target = packs.sort((a, b) => b.size - a.size)[0];
    const name = path.posix.basename(target.key);
    // The pack's objects, from the local copy of the same bytes (the same sizes and offsets).
    const store = await LocalPackStore.open(path.join(repo.worktree, '.coral'));
    const same = store.packListing().find((p) => p.size === target.size)!;
    const victim = [...same.entries].sort((a, b) => b.size - a.size)[0];
    await store.close();
    await flipByte(bucket, target.key, victim.offset! + Math.floor(victim.size / 2));
    const err = await Repository.clone(url, path.join(d, 'c'), { endpoint }).then(
      () => null,
      (e: { code?: string; message: string }) => e,
    );
    expect(err?.code).toBe(ChecksumMismatchError.code);
    expect(err?.message).toContain(victim.id);
    expect(err?.message).toContain(name);
    expect(fs.existsSync(path.join(d, 'c'))).toBe(false);
    // A fetch into an empty repository: the pack's pieces were written to a temp file as they arrived
    // (and the next pack's, read ahead); both are gone, nothing of the damaged pack is stored, no ref moved.
    const b = await Repository.init(path.join(d, 'b'));
    await b.remoteAdd('origin', url, { endpoint });
    await expect(b.fetch('origin')).rejects.toMatchObject({ code: ChecksumMismatchError.code });
    const got = await storedObjects(path.join(b.worktree, '.coral'));
    for (const e of same.entries) expect(got.has(e.id), `object ${e.id} of the damaged pack`).toBe(false);
    expect(fs.readdirSync(path.join(b.worktree, '.coral', 'tmp')).filter((f) => f.startsWith('pack-'))).toEqual([]);
    expect(await b.refs.readRef('refs/remotes/origin/main')).toBeNull();
    await b.close();
    await repo.close();
  });
});
