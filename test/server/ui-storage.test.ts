// The storage breakdown of the web UI (lib/server/ui/view.ts `RepoView.storage`) against a straightforward
// computation written here from the definitions in docs/ui.md: every tree fully decoded, every set built
// per commit. The repository has delta chains (bench/lib/ui-repo.ts writes each changed tensor against its
// previous version), more commits than the breakdown lists (so the last listed commit's parent is outside
// the window), a second file, a side branch and a merge commit with two parents; then a commit moves main
// and the breakdown, cached per state of the refs, must follow exactly.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildUiRepo } from '../../bench/lib/ui-repo';
import { withWriter } from '../../lib/context';
import { decodeMeta, encodeCommit, type Tree } from '../../lib/models';
import { canonicalJson } from '../../lib/models/canonical';
import { openFileRemote } from '../../lib/remote/file';
import type { RemoteRepo } from '../../lib/remote/transport';
import { Repository } from '../../lib/repository';
import type { UiStorage } from '../../lib/server/ui/contract';
import { RepoView, STORAGE_COMMITS, UiCache } from '../../lib/server/ui/view';
import { tensor } from '../../lib/tensor/tensor';

const COMMITS = STORAGE_COMMITS + 12;
const TENSORS = 20;
const ELEMENTS = 1024; // large enough for the writer to store changed tensors as deltas

let dir: string;
afterAll(() => {
  if (dir) fs.rmSync(path.dirname(dir), { recursive: true, force: true });
});

/** The breakdown computed the plain way: decode everything, one set per commit. */
async function reference(remote: RemoteRepo): Promise<UiStorage> {
  const all = [];
  for await (const a of remote.objects.list()) all.push(a);
  const size = new Map(all.map((a) => [a.id, a.storedSize]));
  const sizeOf = (ids: Set<string>) => [...ids].reduce((s, id) => s + (size.get(id) ?? 0), 0);
  const codecs = new Map<string, { objects: number; logical: number; stored: number }>();
  const depths = new Map<number, number>();
  for (const a of all) {
    const c = codecs.get(a.codec) ?? { objects: 0, logical: 0, stored: 0 };
    codecs.set(a.codec, { objects: c.objects + 1, logical: c.logical + a.rawSize, stored: c.stored + a.storedSize });
    const d = a.base ? Math.max(1, Number(a.extra.depth ?? 1) || 1) : 0;
    depths.set(d, (depths.get(d) ?? 0) + 1);
  }
  const commitOf = async (id: string) => {
    const m = decodeMeta(await remote.meta.get(id));
    if (m.type !== 'commit') throw new Error(`${id} is not a commit`);
    return m.value;
  };
  const treeOf = async (id: string): Promise<Tree> => {
    const m = decodeMeta(await remote.meta.get((await commitOf(id)).tree));
    if (m.type !== 'tree') throw new Error(`${id}'s tree is not a tree`);
    return m.value;
  };
  const objectsOf = (t: Tree) => {
    const out = new Set<string>();
    for (const e of Object.values(t.files)) {
      out.add(e.skeleton);
      for (const s of e.segments) out.add(s.object);
    }
    return out;
  };

  const head = (await remote.listRefs()).get(`refs/heads/${await remote.headBranch()}`)!.id;
  const headTree = await treeOf(head);
  const byFile = Object.entries(headTree.files)
    .map(([p, e]) => ({
      path: p,
      logical: e.size,
      stored: sizeOf(new Set([e.skeleton, ...e.segments.map((s) => s.object)])),
    }))
    .sort((x, y) => y.stored - x.stored || (x.path < y.path ? -1 : 1));

  // The order is the graph's (tested with the commits endpoint); take its first STORAGE_COMMITS.
  const order = (await new RepoView(remote, new UiCache()).commits({ limit: 500 })).commits.slice(0, STORAGE_COMMITS);
  const byCommit = [];
  for (const c of order) {
    const mine = objectsOf(await treeOf(c.id));
    const theirs = new Set<string>();
    for (const p of c.parents) for (const o of objectsOf(await treeOf(p))) theirs.add(o);
    byCommit.push({
      id: c.id,
      message: c.message,
      newStored: sizeOf(new Set([...mine].filter((o) => !theirs.has(o)))),
    });
  }
  return {
    logical: all.reduce((s, a) => s + a.rawSize, 0),
    stored: all.reduce((s, a) => s + a.storedSize, 0),
    objects: all.length,
    byCodec: [...codecs]
      .map(([codec, c]) => ({ codec, ...c }))
      .sort((x, y) => y.stored - x.stored || (x.codec < y.codec ? -1 : 1)),
    byFile,
    byCommit,
    chainDepths: [...depths].sort((x, y) => x[0] - y[0]).map(([depth, objects]) => ({ depth, objects })),
  };
}

/** Writes one new version of a tensor (a delta against `base`) and returns its id. */
async function newObject(repo: Repository, base: string, seed: number): Promise<string> {
  const v = Float32Array.from({ length: ELEMENTS }, (_, i) => Math.sin(seed * 31 + i) * 0.5);
  return withWriter(repo, 'test', async (w) => (await w.put(tensor('F32', [ELEMENTS], v), { id: base })).id);
}

async function commitTree(
  repo: Repository,
  tree: Tree,
  parents: string[],
  message: string,
  t: number,
): Promise<string> {
  const treeId = await repo.meta.put(Buffer.from(canonicalJson({ type: 'tree', v: 1, files: tree.files })));
  const sig = { name: 't', email: 't@example.com', timestamp: 1_800_000_000 + t, tzOffset: 0 };
  return repo.meta.put(encodeCommit({ tree: treeId, parents, author: sig, committer: sig, message, metadata: {} }));
}

describe('storage breakdown: the fast path gives exactly the plain computation', () => {
  let ids: string[];
  beforeAll(async () => {
    dir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'coral-ui-storage-')), 'repo');
    ids = await buildUiRepo(dir, { commits: COMMITS, tensors: TENSORS, elements: ELEMENTS, fast: true });
    const repo = await Repository.open(dir);
    try {
      const main = ids[ids.length - 1];
      // The side branch: a second file (a copy of the first with one tensor rewritten), one commit.
      const sideTip = (await repo.refs.readRef('refs/heads/side'))!;
      const sideTree: Tree = structuredClone(await repo.treeOf(sideTip));
      const second = structuredClone(sideTree.files['model.safetensors']);
      const seg = second.segments[second.tensors[3].segment];
      seg.object = await newObject(repo, seg.object, 1);
      sideTree.files['extra.safetensors'] = second;
      const sideCommit = await commitTree(repo, sideTree, [sideTip], 'side: extra file', 10);
      await repo.refs.updateRef('refs/heads/side', sideCommit, { expectedOld: sideTip, message: 'test' });
      // The merge: main's file with one more tensor rewritten, and the side's second file.
      const mergeTree: Tree = structuredClone(await repo.treeOf(main));
      const e = mergeTree.files['model.safetensors'];
      const s = e.segments[e.tensors[7].segment];
      s.object = await newObject(repo, s.object, 2);
      mergeTree.files['extra.safetensors'] = second;
      const merge = await commitTree(repo, mergeTree, [main, sideCommit], 'merge side', 20);
      await repo.refs.updateRef('refs/heads/main', merge, { expectedOld: main, message: 'test' });
      ids.push(merge);
    } finally {
      await repo.close();
    }
  }, 120_000);

  it('matches on a repository with merges and delta chains, and again after main moves', async () => {
    const remote = await openFileRemote(dir);
    const cache = new UiCache();
    const got = await new RepoView(remote, cache).storage();
    const want = await reference(remote);
    expect(JSON.stringify(got)).toBe(JSON.stringify(want));
    // The shapes the test means to cover are there.
    expect(got.chainDepths.some((d) => d.depth >= 1)).toBe(true);
    expect(got.byCommit).toHaveLength(STORAGE_COMMITS);
    const merge = got.byCommit[0];
    expect(merge.message).toBe('merge side');
    expect(merge.newStored).toBeGreaterThan(0); // its own rewritten tensor; the side's file is not new
    expect(got.byFile.map((f) => f.path).sort()).toEqual(['extra.safetensors', 'model.safetensors']);

    // A new commit on main: the cached breakdown (and the trees the cache kept) must not answer stale.
    const repo = await Repository.open(dir);
    try {
      const tree: Tree = structuredClone(await repo.treeOf(ids[ids.length - 1]));
      const e = tree.files['extra.safetensors'];
      const s = e.segments[e.tensors[0].segment];
      s.object = await newObject(repo, s.object, 3);
      const next = await commitTree(repo, tree, [ids[ids.length - 1]], 'after the merge', 30);
      await repo.refs.updateRef('refs/heads/main', next, { expectedOld: ids[ids.length - 1], message: 'test' });
    } finally {
      await repo.close();
    }
    const again = await new RepoView(remote, cache).storage();
    expect(again.byCommit[0].message).toBe('after the merge');
    expect(JSON.stringify(again)).toBe(JSON.stringify(await reference(remote)));
    // And a fresh cache agrees with the warm one.
    expect(JSON.stringify(await new RepoView(remote, new UiCache()).storage())).toBe(JSON.stringify(again));
  }, 120_000);
});
