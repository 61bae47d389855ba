// lib/worktree/staging.ts indexForTree / rebuildIndexFromTree: the one index rebuild behind `coral reset`,
// `reset --mixed <rev>` and `fsck --rebuild-index` (it replaced reset's own copy).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { RepoLayout } from '../../../lib/layout';
import { fileTable, type FileEntry, type Tree } from '../../../lib/models';
import { indexForTree, readIndex, rebuildIndexFromTree, writeIndex } from '../../../lib/worktree/staging';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

const entry = (sha: string, size: number): FileEntry => ({
  format: 'raw',
  sha256: sha.repeat(64),
  size,
  skeleton: 'k',
  segments: [],
  tensors: [],
});
const tree = (files: Record<string, FileEntry>): Tree => ({ files: fileTable(Object.entries(files)) });
const stat = { size: 1, mtimeMs: 2, ino: 3 };

describe('index rebuild', () => {
  it('keeps the stat cache only where the entry is unchanged', () => {
    const old = fileTable(Object.entries({ a: { entry: entry('a', 1), stat }, b: { entry: entry('b', 1), stat } }));
    const idx = indexForTree(tree({ a: entry('a', 1), b: entry('c', 1), n: entry('n', 1) }), old);
    expect(idx.files.a.stat).toEqual(stat);
    expect(idx.files.b.stat).toBeNull();
    expect(idx.files.n.stat).toBeNull();
    expect(Object.keys(indexForTree(tree({ a: entry('a', 1) }), null).files)).toEqual(['a']);
  });

  it('replaces a damaged index whole', async () => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'coral-idx-'));
    dirs.push(d);
    const layout = new RepoLayout(d);
    fs.mkdirSync(layout.coral, { recursive: true });
    fs.writeFileSync(layout.index, 'garbage');
    expect(() => readIndex(layout)).toThrow();
    expect(await rebuildIndexFromTree(layout, tree({ x: entry('x', 5) }))).toBe(1);
    expect(readIndex(layout).files.x.entry.size).toBe(5);
    await writeIndex(layout, { version: 1, files: fileTable(Object.entries({ x: { entry: entry('x', 5), stat } })) });
    await rebuildIndexFromTree(layout, tree({ x: entry('x', 5) }));
    expect(readIndex(layout).files.x.stat).toEqual(stat);
  });
});
