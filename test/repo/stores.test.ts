// The repository-level lifecycle on every object store (issue #12): init → add → commit → branch → checkout →
// diff → status → tag → reset → gc → fsck through `Repository.init(dir, { store })`, on the local HDF5 packs and
// on the memory store. A backend that passes the store conformance suite must also pass this.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Repository } from '../../lib/repository';
import type { OpenOptions } from '../../lib/context';
import { MemoryStore } from '../../lib/store/memory';
import { S3ObjectStore } from '../../lib/store/s3/store';
import { ceph, makeBucket } from '../helpers/ceph';
import { f32, tmpdir, weights, writeSafetensors } from '../helpers/cli';

const dirs: string[] = [];
const repos: Repository[] = [];
afterEach(async () => {
  for (const r of repos.splice(0)) await r.close().catch(() => {});
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

const STORES: Array<[string, () => OpenOptions | Promise<OpenOptions>]> = [
  ['local packs', () => ({})],
  ['memory', () => ({ store: new MemoryStore() })],
  [
    'S3 (Ceph RGW)',
    async () => {
      await ceph();
      return { store: await S3ObjectStore.open({ bucket: await makeBucket('repo'), prefix: 'repo/' }) };
    },
  ],
];

const sha = (f: string) => crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex');

function checkpoint(file: string, seed: number): void {
  writeSafetensors(file, {
    'layer.0.weight': { dtype: 'F32', shape: [64, 32], data: f32(weights(64 * 32, seed)) },
    'layer.0.bias': { dtype: 'F32', shape: [32], data: f32(weights(32, 7)) },
  });
}

describe.each(STORES)('repository on %s', (_name, opts) => {
  it('runs the whole lifecycle', async () => {
    const d = tmpdir('coral-stores-');
    dirs.push(d);
    const repo = await Repository.init(d, await opts());
    repos.push(repo);
    const file = path.join(d, 'model.safetensors');

    checkpoint(file, 1);
    const added = await repo.add([file]);
    expect(added.files.map((f) => f.path)).toEqual(['model.safetensors']);
    const c1 = await repo.commit({ message: 'base' });
    expect(Repository.isCommitId(c1)).toBe(true);
    const v1 = sha(file);

    await repo.createBranch('tune');
    expect((await repo.branches()).map((b) => [b.name, b.current])).toEqual([
      ['main', true],
      ['tune', false],
    ]);
    const sw = await repo.checkout('tune');
    expect(sw.branch).toBe('tune');
    checkpoint(file, 2);
    expect((await repo.status()).files).toEqual([{ path: 'model.safetensors', staged: null, unstaged: 'modified' }]);
    await repo.add([file]);
    const c2 = await repo.commit({ message: 'tuned' });
    const v2 = sha(file);

    const changes = await repo.diff('main', 'tune');
    expect(changes).toHaveLength(1);
    const modified = changes[0].tensors.filter((t) => t.change === 'modified').map((t) => t.name);
    expect(modified).toEqual(['layer.0.weight']);

    await repo.createTag('v1', 'main', { message: 'release', metrics: { acc: 0.9 } });
    expect((await repo.tags()).map((t) => [t.name, t.commit, t.annotated])).toEqual([['v1', c1, true]]);

    await repo.checkout('main');
    expect(sha(file)).toBe(v1);
    await repo.checkout('tune');
    expect(sha(file)).toBe(v2);

    const reset = await repo.resetTo({ mode: 'hard', rev: 'v1' });
    expect(reset).toMatchObject({ mode: 'hard', head: c1, orig: c2 });
    expect(sha(file)).toBe(v1);
    expect((await repo.status()).files).toEqual([]);

    // c2 is still reachable through the reflog: gc keeps it, and the worktree can go back to it.
    const gc = await repo.gc({ pruneExpireMs: 0 });
    expect(gc.reachableCommits).toBe(2);
    const fsck = await repo.fsck();
    expect(fsck).toMatchObject({ ok: true, commits: 2, problems: [] });
    await repo.resetTo({ mode: 'hard', rev: c2 });
    expect(sha(file)).toBe(v2);
    expect((await repo.log()).map((e) => e.id)).toEqual([c2, c1]);
  });
});
