// Negotiation through the library (lib/remote/negotiate.ts): a delta travels with its base unless the
// receiver has it; a damaged meta object on the remote stops a fetch before anything is written; the
// object filter of partial clones.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CorruptObjectError } from '../../lib/errors';
import { encodeCommit, fileTable } from '../../lib/models';
import { Repository } from '../../lib/repository';
import { initBare } from '../../lib/remote/file';
import { globFilter, treeObjects } from '../../lib/remote/negotiate';
import { sha256 } from '../helpers/cli';
import { family, packCount, storedObjects, writeModel } from './helpers';

function tmp(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'coral-negotiate-'));
}

/** A repository with a base and a fine-tune of it (stored as deltas against the base). */
async function twoVersions(dir: string): Promise<{ repo: Repository; base: string; tune: string }> {
  const repo = await Repository.init(path.join(dir, 'a'));
  writeModel(path.join(repo.worktree, 'model.safetensors'), family(0));
  await repo.add([path.join(repo.worktree, 'model.safetensors')]);
  const base = await repo.commit({ message: 'base' });
  writeModel(path.join(repo.worktree, 'model.safetensors'), family(1));
  await repo.add([path.join(repo.worktree, 'model.safetensors')]);
  const tune = await repo.commit({ message: 'fine-tune' });
  return { repo, base, tune };
}

describe('negotiation', () => {
  it('sends a delta with its base when the receiver lacks the base, and without it when it has it', async () => {
    const d = tmp();
    try {
      const { repo, tune } = await twoVersions(d);
      const tuneTree = (await repo.readCommit(tune)).tree;
      const deltas = [];
      for (const [, e] of Object.entries((await repo.readTree(tuneTree)).files))
        for (const s of e.segments) {
          const a = await repo.store.stat(s.object);
          if (a.base) deltas.push({ id: s.object, base: a.base });
        }
      expect(deltas.length).toBeGreaterThan(0);
      // An orphan commit with the fine-tune's tree: its deltas' bases are in no tree it reaches.
      const sig = { name: 'T', email: 't@example.com', timestamp: 1_700_000_000, tzOffset: 0 };
      const orphan = await repo.meta.put(
        encodeCommit({ tree: tuneTree, parents: [], author: sig, committer: sig, message: 'orphan', metadata: {} }),
      );
      await repo.refs.updateRef('refs/heads/orphan', orphan, { expectedOld: null, message: 'test' });
      const hub = await initBare(path.join(d, 'hub.coral'));
      await repo.remoteAdd('origin', hub);
      const r = await repo.push('origin', { refspecs: ['orphan'] });
      const onHub = await storedObjects(hub);
      for (const x of deltas) expect(onHub.has(x.base), `base ${x.base} went along`).toBe(true);
      expect(r.objects).toBe(onHub.size);
      // A clone of the orphan branch checks out byte for byte.
      const want = sha256(path.join(repo.worktree, 'model.safetensors'));
      const { repository: c } = await Repository.clone(hub, path.join(d, 'c'), { branch: 'orphan' });
      expect(sha256(path.join(c.worktree, 'model.safetensors'))).toBe(want);
      expect((await c.fsck()).ok).toBe(true);
      await c.close();
      // main's history adds only the base version's own objects: the deltas' bases are there already.
      const before = new Set(onHub.keys());
      const r2 = await repo.push('origin', { refspecs: ['main'] });
      const added = [...(await storedObjects(hub)).keys()].filter((id) => !before.has(id));
      expect(r2.objects).toBe(added.length);
      for (const x of deltas) expect(added).not.toContain(x.base);
      await repo.close();
    } finally {
      fs.rmSync(d, { recursive: true, force: true });
    }
  });

  it('a damaged meta object on the remote stops a fetch before any object or ref is written', async () => {
    const d = tmp();
    try {
      const repo = await Repository.init(path.join(d, 'a'));
      const model = path.join(repo.worktree, 'model.safetensors');
      writeModel(model, family(0));
      await repo.add([model]);
      const base = await repo.commit({ message: 'base' });
      const hub = await initBare(path.join(d, 'hub.coral'));
      await repo.remoteAdd('origin', hub);
      await repo.push('origin');
      const { repository: c } = await Repository.clone(hub, path.join(d, 'c'));
      writeModel(model, family(1));
      await repo.add([model]);
      const tip = await repo.commit({ message: 'fine-tune' });
      await repo.push('origin');
      const tree = (await repo.readCommit(tip)).tree;
      const file = path.join(hub, 'objects', 'meta', tree.slice(0, 2), tree.slice(2));
      fs.chmodSync(file, 0o644);
      fs.writeFileSync(file, '{"type":"tree","v":1,"files":{}}');
      const packs = packCount(c.layout.coral);
      const err = await c.fetch('origin').then(
        () => null,
        (e: unknown) => e as { code?: string; message: string },
      );
      expect(err?.code).toBe(CorruptObjectError.code);
      expect(err?.message).toContain(tree);
      expect(packCount(c.layout.coral)).toBe(packs);
      expect(await c.meta.has(tip)).toBe(false);
      expect(await c.refs.readRef('refs/remotes/origin/main')).toBe(base);
      await c.close();
      await repo.close();
    } finally {
      fs.rmSync(d, { recursive: true, force: true });
    }
  });

  it('the partial-clone filter takes a file by path, or a segment by any tensor name it holds', () => {
    const e = (tensors: string[][]) => ({
      format: 'safetensors',
      size: 1,
      sha256: '0'.repeat(64),
      skeleton: 'sk',
      segments: tensors.map((_, i) => ({ offset: i, length: 1, object: `seg${i}`, dtype: 'U8', shape: [1] })),
      tensors: tensors.flatMap((names, i) =>
        names.map((name) => ({ name, dtype: 'U8', shape: [1], segment: i, elementOffset: 0, strides: null })),
      ),
    });
    const tree = {
      files: fileTable([
        ['a/model.safetensors', e([['w'], ['lm_head.weight', 'tied']])],
        ['b.bin', e([['x']])],
      ]),
    };
    const out = new Set<string>();
    const left = treeObjects(tree, globFilter(['lm_head.*']), out);
    expect([...out]).toEqual(['seg1']);
    expect(left).toBe(4); // two skeletons, two segments
    const all = new Set<string>();
    expect(treeObjects(tree, globFilter(['a/*']), all)).toBe(2);
    expect([...all].sort()).toEqual(['seg0', 'seg1', 'sk']);
  });
});
