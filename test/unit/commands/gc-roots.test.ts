// What gc keeps (lib/commands/reach.ts gcRoots): every ref (branches, tags), a detached HEAD, every id in the
// reflogs, the staging index and a merge in progress (its commits and its inline tree). Until now only the e2e
// gc tests reached these.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { gc } from '../../../lib/commands/gc';
import { gcRoots, reach } from '../../../lib/commands/reach';
import { Repository } from '../../../lib/repository';
import { MemoryStore } from '../../../lib/store/memory';
import { readIndex } from '../../../lib/worktree/staging';
import { f32, tmpdir, weights, writeSafetensors } from '../../helpers/cli';

const dirs: string[] = [];
const repos: Repository[] = [];
afterEach(async () => {
  for (const r of repos.splice(0)) await r.close().catch(() => {});
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

async function setup(): Promise<{ repo: Repository; file: string }> {
  const d = tmpdir('coral-gcroots-');
  dirs.push(d);
  const repo = await Repository.init(d, { store: new MemoryStore() });
  repos.push(repo);
  return { repo, file: path.join(d, 'm.safetensors') };
}

function version(file: string, seed: number): void {
  writeSafetensors(file, { w: { dtype: 'F32', shape: [128], data: f32(weights(128, seed)) } });
}

/** The object ids of the file's tensors as the index holds them. */
function stagedObjects(repo: Repository): string[] {
  const idx = readIndex(repo.layout);
  return Object.values(idx.files).flatMap((s) => s.entry.segments.map((x) => x.object));
}

describe('gc roots', () => {
  it('are the refs, tags, a detached HEAD, the reflogs, the index and MERGE_STATE', async () => {
    const { repo, file } = await setup();
    version(file, 1);
    await repo.add([file]);
    const c1 = await repo.commit({ message: 'one' });
    const tag = await repo.createTag('v1', c1, { message: 'annotated' });
    version(file, 2);
    await repo.add([file]);
    const c2 = await repo.commit({ message: 'two' });
    await repo.resetTo({ mode: 'hard', rev: c1 }); // c2: only in the reflog now
    await repo.checkout(c1); // detached HEAD

    const orig = '1'.repeat(64);
    const theirs = '2'.repeat(64);
    const mergedTree = { files: { 'merged.bin': { ...(await repo.treeOf(c1)).files['m.safetensors'] } } };
    fs.writeFileSync(repo.layout.mergeState, JSON.stringify({ theirs: [theirs], orig, tree: mergedTree }));

    const roots = await gcRoots(repo);
    for (const id of [c1, tag, c2, orig, theirs]) expect(roots.commits.has(id), id).toBe(true);
    const treeFiles = roots.trees.map((t) => Object.keys(t.files).sort());
    expect(treeFiles).toContainEqual(['merged.bin']); // the merge's inline tree
    expect(treeFiles).toContainEqual(['m.safetensors']); // the index
  });

  it('keep objects only the index names, and drop what nothing names', async () => {
    const { repo, file } = await setup();
    version(file, 1);
    await repo.add([file]);
    await repo.commit({ message: 'one' });
    version(file, 3);
    await repo.add([file]); // staged, not committed
    const staged = stagedObjects(repo);
    const r = await reach(repo, { followBases: true });
    for (const id of staged) expect(r.objects.has(id)).toBe(true);
    await gc(repo, { pruneExpireMs: 0 });
    for (const id of staged) expect(await repo.store.has(id)).toBe(true);
    expect((await repo.fsck()).ok).toBe(true);

    await repo.reset([file]); // unstaged: the version-3 objects are named by nothing
    const report = await gc(repo, { pruneExpireMs: 0 });
    expect(report.removedObjects).toBeGreaterThan(0);
    for (const id of staged) expect(await repo.store.has(id)).toBe(false);
    expect((await repo.fsck()).ok).toBe(true);
  });
});
