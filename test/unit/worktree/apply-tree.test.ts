// lib/worktree/apply-tree.ts: the one worktree switch and its dirty check, driven
// through the library (no CLI) on small safetensors files.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DirtyWorktreeError } from '../../../lib/errors';
import { applyTree, blockedPaths, checkSwitch } from '../../../lib/worktree/apply-tree';
import { Repository } from '../../../lib/repository';
import { readIndex } from '../../../lib/worktree/staging';
import { f32, sha256, tmpdir, weights, writeSafetensors } from '../../helpers/cli';

let dir: string;
let repo: Repository;
beforeEach(async () => {
  dir = tmpdir('coral-apply-');
  repo = await Repository.init(dir);
});
afterEach(async () => {
  await repo.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

function write(rel: string, seed: number): string {
  const f = path.join(dir, rel);
  fs.mkdirSync(path.dirname(f), { recursive: true });
  writeSafetensors(f, { w: { dtype: 'F32', shape: [16], data: f32(weights(16, seed)) } });
  return sha256(f);
}

async function commitAll(msg: string): Promise<string> {
  await repo.add([dir]);
  return repo.commit({ message: msg });
}

/** Two commits: a.st same in both, b.st different, c.st only in the second. */
async function twoTrees() {
  write('a.st', 1);
  write('b.st', 2);
  const c1 = await commitAll('one');
  write('b.st', 3);
  write('c.st', 4);
  const c2 = await commitAll('two');
  return { t1: await repo.treeOf(c1), t2: await repo.treeOf(c2) };
}

describe('applyTree', () => {
  it('carries over edits on paths equal in both trees, and reports them as kept', async () => {
    const { t1, t2 } = await twoTrees();
    const ea = write('a.st', 9);
    const r = await applyTree(repo, t2, t1);
    expect(r).toEqual({ written: ['b.st'], removed: ['c.st'], kept: ['a.st'] });
    expect(sha256(path.join(dir, 'a.st'))).toBe(ea);
    expect(fs.existsSync(path.join(dir, 'c.st'))).toBe(false);
    expect(readIndex(repo.layout).files['b.st'].entry.sha256).toBe(t1.files['b.st'].sha256);
  });

  it('refuses before writing anything: unstaged, staged, staged deletion, untracked in the way', async () => {
    const { t1, t2 } = await twoTrees();
    const eb = write('b.st', 7);
    await expect(applyTree(repo, t2, t1)).rejects.toMatchObject({
      code: DirtyWorktreeError.code,
      data: { paths: ['b.st'] },
    });
    expect(sha256(path.join(dir, 'b.st'))).toBe(eb);
    expect(fs.existsSync(path.join(dir, 'c.st'))).toBe(true);
    await repo.add([path.join(dir, 'b.st')]);
    expect(await blockedPaths(repo, readIndex(repo.layout), t2, t1)).toEqual(['b.st']);
    await repo.rm([path.join(dir, 'b.st')], { cached: true, force: true });
    expect(await blockedPaths(repo, readIndex(repo.layout), t2, t1)).toEqual(['b.st']); // staged deletion
    // An untracked file where the target puts one blocks, unless it holds the target's bytes.
    await applyTree(repo, t2, t2, { force: true });
    await applyTree(repo, t2, t1);
    write('c.st', 5);
    expect(await blockedPaths(repo, readIndex(repo.layout), t1, t2)).toEqual(['c.st']);
    write('c.st', 4);
    expect(await blockedPaths(repo, readIndex(repo.layout), t1, t2)).toEqual([]);
  });

  it('a missing file or a staged entry equal to the target does not block; force overwrites everything', async () => {
    const { t1, t2 } = await twoTrees();
    fs.rmSync(path.join(dir, 'b.st'));
    expect(await blockedPaths(repo, readIndex(repo.layout), t2, t1)).toEqual([]);
    write('b.st', 2); // the bytes t1 has, staged
    await repo.add([path.join(dir, 'b.st')]);
    expect(await blockedPaths(repo, readIndex(repo.layout), t2, t1)).toEqual([]);
    write('a.st', 8);
    const r = await applyTree(repo, t2, t1, { force: true });
    expect(r.written).toEqual(['a.st']); // b.st already held t1's bytes
    expect(sha256(path.join(dir, 'a.st'))).toBe(t1.files['a.st'].sha256);
  });

  it('a file untracked with rm --cached survives a switch to a tree without it', async () => {
    const { t1, t2 } = await twoTrees();
    const ec = sha256(path.join(dir, 'c.st'));
    await repo.rm([path.join(dir, 'c.st')], { cached: true });
    expect(await blockedPaths(repo, readIndex(repo.layout), t2, t1)).toEqual([]);
    const r = await applyTree(repo, t2, t1);
    expect(r.removed).toEqual([]);
    expect(sha256(path.join(dir, 'c.st'))).toBe(ec);
    expect(readIndex(repo.layout).files['c.st']).toBeUndefined();
  });

  it('strict mode (merge): any local change blocks', async () => {
    const { t2 } = await twoTrees();
    write('a.st', 8);
    await expect(checkSwitch(repo, t2, t2)).resolves.toBeUndefined();
    await expect(checkSwitch(repo, t2, t2, { strict: true, operation: 'merge' })).rejects.toThrow(
      /cannot merge with local changes \(a\.st\)/,
    );
  });
});
