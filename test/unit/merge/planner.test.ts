// lib/merge/planner.ts: the merge planner on trees built in memory (no refs, no worktree
// switch): clean merges, one-sided changes, conflicts, per-tensor strategy resolution,
// added and removed files, and parameter checks before anything is read.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { withWriter } from '../../../lib/context';
import { InvalidArgumentError } from '../../../lib/errors';
import { ingestFile } from '../../../lib/ingest/ingest';
import { Repository, fileTable, type FileEntry, type Tree } from '../../../lib/index';
import { planMerge, type Plan } from '../../../lib/merge/planner';
import type { MergeParams } from '../../../lib/merge/params';
import { readFileTensor } from '../../../lib/worktree/materialize';
import { f32, tmpdir, weights, writeSafetensors } from '../../helpers/cli';

let dir: string;
let repo: Repository;
beforeEach(async () => {
  dir = tmpdir('coral-planner-');
  repo = await Repository.init(dir);
});
afterEach(async () => {
  await repo.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

type Spec = Record<string, Record<string, Float32Array>>;

let n = 0;
/** A tree of safetensors files (path -> tensor name -> values), ingested outside the worktree. */
async function tree(spec: Spec): Promise<Tree> {
  const files = fileTable<FileEntry>();
  await withWriter(repo, 'test', async (w) => {
    for (const [rel, tensors] of Object.entries(spec)) {
      const abs = path.join(dir, '.coral', 'tmp', `t${n++}.safetensors`);
      fs.mkdirSync(path.dirname(abs), { recursive: true });
      const t: Record<string, { dtype: string; shape: number[]; data: Uint8Array }> = {};
      for (const [name, v] of Object.entries(tensors)) t[name] = { dtype: 'F32', shape: [v.length], data: f32(v) };
      writeSafetensors(abs, t);
      files[rel] = (await ingestFile(w, abs, rel, null)).entry;
      fs.rmSync(abs);
    }
  });
  return { files };
}

async function plan(base: Tree, ours: Tree, theirs: Tree, params: MergeParams = {}, keepUnresolved = false) {
  let p: Plan | null = null;
  try {
    return await withWriter(repo, 'merge', async (w) => {
      p = await planMerge(repo, w, base, ours, theirs, params, { keepUnresolved });
      return p;
    });
  } finally {
    await (p as Plan | null)?.prepared.discard();
  }
}

async function values(e: FileEntry, name: string): Promise<number[]> {
  const te = e.tensors.find((t) => t.name === name)!;
  const t = await readFileTensor(repo.reader, e, te);
  return [...new Float32Array(t.data.buffer.slice(t.data.byteOffset, t.data.byteOffset + t.data.byteLength))];
}

const A = weights(8, 1);
const B = weights(8, 2);
const A2 = weights(8, 3);
const B2 = weights(8, 4);
const A3 = weights(8, 5);

describe('planMerge', () => {
  it('clean merge: each side changed a different tensor of one file', async () => {
    const base = await tree({ 'm.st': { a: A, b: B } });
    const ours = await tree({ 'm.st': { a: A2, b: B } });
    const theirs = await tree({ 'm.st': { a: A, b: B2 } });
    const p = await plan(base, ours, theirs);
    expect(p.conflicts).toEqual([]);
    expect(p.unresolved).toEqual([]);
    expect(p.autoMerged).toEqual([
      { file: 'm.st', tensor: 'a', kind: 'modified-ours' },
      { file: 'm.st', tensor: 'b', kind: 'modified-theirs' },
    ]);
    expect(await values(p.tree.files['m.st'], 'a')).toEqual([...A2]);
    expect(await values(p.tree.files['m.st'], 'b')).toEqual([...B2]);
  });

  it('one-sided changes take that side’s file entry as is', async () => {
    const base = await tree({ 'x.st': { a: A }, 'y.st': { b: B } });
    const ours = await tree({ 'x.st': { a: A2 }, 'y.st': { b: B } });
    const theirs = await tree({ 'x.st': { a: A }, 'y.st': { b: B2 } });
    const p = await plan(base, ours, theirs);
    expect(p.conflicts).toEqual([]);
    expect(p.tree.files['x.st']).toBe(ours.files['x.st']);
    expect(p.tree.files['y.st']).toBe(theirs.files['y.st']);
    expect(p.autoMerged).toEqual([
      { file: 'x.st', tensor: null, kind: 'modified-ours' },
      { file: 'y.st', tensor: null, kind: 'modified-theirs' },
    ]);
  });

  it('a tensor changed on both sides is an unresolved conflict under fail; keepUnresolved keeps ours', async () => {
    const base = await tree({ 'm.st': { a: A, b: B } });
    const ours = await tree({ 'm.st': { a: A2, b: B } });
    const theirs = await tree({ 'm.st': { a: A3, b: B } });
    const p = await plan(base, ours, theirs);
    expect(p.unresolved).toEqual([
      expect.objectContaining({
        file: 'm.st',
        tensor: 'a',
        kind: 'conflict-modify-modify',
        strategy: 'fail',
        resolvedBy: null,
        reason: 'fail',
      }),
    ]);
    const kept = await plan(base, ours, theirs, {}, true);
    expect(kept.unresolved).toHaveLength(1);
    expect(await values(kept.tree.files['m.st'], 'a')).toEqual([...A2]);
  });

  it('resolves per tensor: the default strategy, --resolve rules (last match wins, file:tensor globs)', async () => {
    const base = await tree({ 'm.st': { 'enc.w': A, 'dec.w': B } });
    const ours = await tree({ 'm.st': { 'enc.w': A2, 'dec.w': B2 } });
    const theirs = await tree({ 'm.st': { 'enc.w': A3, 'dec.w': B } });
    // dec.w changed on ours only: taken without a strategy.
    const p = await plan(base, ours, theirs, { strategy: 'average', resolve: ['enc.*=ours', 'm.st:enc.*=theirs'] });
    expect(p.unresolved).toEqual([]);
    expect(p.conflicts).toEqual([
      expect.objectContaining({ file: 'm.st', tensor: 'enc.w', strategy: 'theirs', resolvedBy: 'theirs' }),
    ]);
    const e = p.tree.files['m.st'];
    expect(await values(e, 'enc.w')).toEqual([...A3]);
    expect(await values(e, 'dec.w')).toEqual([...B2]);
    const avg = await plan(base, ours, theirs, { strategy: 'average' });
    const got = await values(avg.tree.files['m.st'], 'enc.w');
    got.forEach((v, i) => expect(v).toBeCloseTo((A2[i] + A3[i]) / 2, 6));
    expect(avg.conflicts[0]).toMatchObject({ tensor: 'enc.w', strategy: 'average', resolvedBy: 'average' });
  });

  it('added and removed files; delete/modify needs ours or theirs', async () => {
    const base = await tree({ 'keep.st': { a: A }, 'gone.st': { b: B }, 'dm.st': { c: A } });
    const ours = await tree({ 'keep.st': { a: A }, 'new-ours.st': { d: B2 } });
    const theirs = await tree({ 'keep.st': { a: A }, 'gone.st': { b: B }, 'dm.st': { c: A3 }, 'new.st': { e: B } });
    const p = await plan(base, ours, theirs, { strategy: 'average' });
    expect(Object.keys(p.tree.files).sort()).toEqual(['keep.st', 'new-ours.st', 'new.st']);
    expect(p.autoMerged).toEqual(
      expect.arrayContaining([
        { file: 'gone.st', tensor: null, kind: 'deleted-ours' },
        { file: 'new.st', tensor: null, kind: 'added-theirs' },
        { file: 'new-ours.st', tensor: null, kind: 'added-ours' },
      ]),
    );
    expect(p.unresolved).toEqual([
      expect.objectContaining({ file: 'dm.st', tensor: null, kind: 'conflict-delete-modify', reason: 'delete-modify' }),
    ]);
    const r = await plan(base, ours, theirs, { resolve: ['dm.st=theirs'] });
    expect(r.unresolved).toEqual([]);
    expect(r.tree.files['dm.st']).toBe(theirs.files['dm.st']);
  });

  it('checks parameters before reading anything', async () => {
    const t = await tree({ 'm.st': { a: A } });
    for (const params of [
      { strategy: 'ties' },
      { strategy: 'average', resolve: ['*=weighted'] },
      { strategy: 'nope' },
      { alpha: 2 },
    ] as MergeParams[])
      await expect(plan(t, t, t, params)).rejects.toBeInstanceOf(InvalidArgumentError);
  });
});
