/**
 * `diff`: revision against revision or the index (`diff`), and the
 * working-tree side (`diffWorktree`). The tensor-aware engine is
 * lib/diff/tensor-diff.ts.
 *
 * The working-tree side of a diff: `coral diff` and `coral diff <rev>` compare
 * a tree with the files on disk. Files unchanged against the index keep the
 * index's identity (no rehash, no parse); changed files are read from disk,
 * with their size as it is now.
 *
 * @example
 * const changes = await diffWorktree(repo, 'HEAD');      // HEAD vs files on disk
 * const unstaged = await diffWorktree(repo, null);       // index vs files on disk
 */
import * as fsp from 'node:fs/promises';
import { absPath, treeOf, type RepoContext } from '../context';
import { fileTable, type Tree } from '../models/tree';
import { diffSides, type DiffSide, type FileChange } from '../diff/tensor-diff';
import { readIndex, treeOfIndex } from '../worktree/staging';
import { status } from './status';

/** What a worktree diff needs from a repository: the repository context (Repository is one). */
export type WorktreeDiffContext = RepoContext;

/**
 * Tensor-aware diff between two revisions (`b` omitted: the index). Modified
 * tensors carry metrics unless `metrics: false`.
 */
export async function diff(
  ctx: Pick<RepoContext, 'refs' | 'meta' | 'layout' | 'reader'>,
  a: string,
  b?: string,
  opts: { metrics?: boolean; paths?: string[] } = {},
): Promise<FileChange[]> {
  const left = await treeOf(ctx, a);
  const right: Tree = b === undefined ? indexTree(ctx) : await treeOf(ctx, b);
  return diffSides(ctx.reader, left, { kind: 'tree', tree: right }, opts);
}

/** The index as a tree (what `diff --cached` compares HEAD with). */
export function indexTree(ctx: Pick<WorktreeDiffContext, 'layout'>): Tree {
  return treeOfIndex(readIndex(ctx.layout));
}

/** The tracked files on disk as a diff side. */
export async function worktreeSide(ctx: WorktreeDiffContext): Promise<Extract<DiffSide, { kind: 'worktree' }>> {
  const idx = readIndex(ctx.layout);
  const st = await status(ctx);
  const files = fileTable<{ abs: string; sha256: string; size: number; format: string }>();
  const changed = new Set(st.files.filter((f) => f.unstaged === 'modified').map((f) => f.path));
  const deleted = new Set(st.files.filter((f) => f.unstaged === 'deleted').map((f) => f.path));
  for (const [p, s] of Object.entries(idx.files)) {
    if (deleted.has(p)) continue;
    const abs = absPath(ctx, p);
    if (!changed.has(p)) {
      files[p] = { abs, sha256: s.entry.sha256, size: s.entry.size, format: s.entry.format };
      continue;
    }
    // A changed file is compared by content, and reports the size it has now.
    const size = (await fsp.lstat(abs)).size; // a symlink's size is its target's length, as git counts it
    files[p] = { abs, sha256: `worktree:${p}`, size, format: s.entry.format };
  }
  return { kind: 'worktree', files };
}

/**
 * Diff of a revision (or the index, for `rev === null`) against the working tree.
 */
export async function diffWorktree(
  ctx: WorktreeDiffContext,
  rev: string | null,
  opts: { metrics?: boolean; paths?: string[] } = {},
): Promise<FileChange[]> {
  const base = rev === null ? indexTree(ctx) : await treeOf(ctx, rev);
  return diffSides(ctx.reader, base, await worktreeSide(ctx), opts);
}

/**
 * Diff of a revision (null: the empty tree of an unborn branch) against the
 * index: what `coral diff --cached` prints.
 */
export async function diffIndex(
  ctx: Pick<RepoContext, 'layout' | 'reader' | 'refs' | 'meta'>,
  rev: string | null,
  opts: { metrics?: boolean; paths?: string[] } = {},
): Promise<FileChange[]> {
  const base = await treeOf(ctx, rev);
  return diffSides(ctx.reader, base, { kind: 'tree', tree: indexTree(ctx) }, opts);
}
