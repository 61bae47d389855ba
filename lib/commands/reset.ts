/**
 * `reset`, as git does it (and `rebuildIndex`, behind `fsck --rebuild-index`):
 *
 * - `reset [--soft|--mixed|--hard] [<rev>]`: moves the current branch (or a
 *   detached HEAD) to `<rev>` with a reflog line `reset: moving to <rev>`;
 *   --mixed (default) also sets the index to its tree (the worktree is left
 *   alone); --hard also rewrites the worktree, through apply-tree with force.
 *   --mixed and --hard forget a merge in progress; --soft refuses during one.
 *   With an unreadable index, --mixed/--hard rebuild it from the target tree.
 * - `reset [<rev>] -- <paths>`: the index entries under the paths take
 *   `<rev>`'s version (or go away); HEAD and the worktree stay. A pathspec that
 *   matches nothing in the index or in `<rev>` is an error.
 *
 * @example
 * await resetTo(repo, { mode: 'hard', rev: 'HEAD~1' });
 * await resetPaths(repo, ['model.safetensors']); // unstage
 */
import * as fsp from 'node:fs/promises';
import { headCommit, headTree, pathspec, resolve, treeOf, type RepoContext } from '../context';
import { CorruptIndexError, InProgressError, InvalidArgumentError } from '../errors';
import { applyTree, inPathspec, sameEntry } from '../worktree/apply-tree';
import { readIndex, rebuildIndexFromTree, updateIndex } from '../worktree/staging';

export type ResetMode = 'soft' | 'mixed' | 'hard';

/** What reset needs from a repository: the repository context (Repository is one). */
export type ResetContext = RepoContext;

export interface ResetReport {
  mode: ResetMode;
  /** The commit HEAD names afterwards (null: still unborn). */
  head: string | null;
  /** HEAD before the reset. */
  orig: string | null;
  written: string[];
  removed: string[];
}

/**
 * Sets the whole index to HEAD's tree (`coral reset`), even when the index is
 * damaged; returns the entry count. With `ifDamaged`, only a damaged index is
 * replaced (`fsck --rebuild-index`); null when it was readable.
 */
export async function rebuildIndex(ctx: RepoContext, opts: { ifDamaged?: boolean } = {}): Promise<number | null> {
  if (opts.ifDamaged) {
    try {
      readIndex(ctx.layout);
      return null;
    } catch (e) {
      if (!(e instanceof CorruptIndexError)) throw e;
    }
  }
  return rebuildIndexFromTree(ctx.layout, await headTree(ctx));
}

async function moveHead(ctx: ResetContext, id: string, from: string | null, rev: string): Promise<void> {
  const head = await ctx.refs.readHead();
  const ref = head.kind === 'symbolic' ? head.target : 'HEAD';
  await ctx.refs.updateRef(ref, id, { expectedOld: from, message: `reset: moving to ${rev}` });
}

export async function resetTo(ctx: ResetContext, opts: { mode?: ResetMode; rev?: string } = {}): Promise<ResetReport> {
  const mode = opts.mode ?? 'mixed';
  if (mode !== 'soft' && mode !== 'mixed' && mode !== 'hard')
    throw new InvalidArgumentError(`Expected one of soft mixed hard for mode but received ${String(mode)}`);
  const orig = await headCommit(ctx);
  const merging = await fsp.stat(ctx.layout.mergeState).then(
    () => true,
    () => false,
  );
  if (mode === 'soft' && merging)
    throw new InProgressError(
      'cannot do a soft reset in the middle of a merge; use `coral merge --abort` or `coral reset --mixed`',
    );
  // An unborn branch with no revision: reset the index (and worktree) to the empty tree.
  const rev = opts.rev ?? 'HEAD';
  const target = opts.rev === undefined && !orig ? null : await resolve(ctx, rev);
  const tree = await treeOf(ctx, target);
  const report: ResetReport = { mode, head: target, orig, written: [], removed: [] };
  if (mode === 'hard') {
    // Force: every tracked path ends as the target says. Files only staged (in neither tree) are
    // unstaged and left on disk, unlike git, which deletes them: an explicit reset still loses no file.
    const r = await applyTree(ctx, await treeOf(ctx, orig), tree, { force: true, ignoreCorruptIndex: true });
    report.written = r.written;
    report.removed = r.removed;
  } else if (mode === 'mixed') {
    await rebuildIndexFromTree(ctx.layout, tree);
  }
  if (target && target !== orig) await moveHead(ctx, target, orig, rev);
  if (mode !== 'soft' && merging) await fsp.rm(ctx.layout.mergeState, { force: true });
  return report;
}

/** `reset [<rev>] -- <paths>`: the index entries under `paths` take `rev`'s version. Returns the paths changed. */
export async function resetPaths(ctx: ResetContext, paths: string[], rev?: string): Promise<string[]> {
  if (!paths.length) throw new InvalidArgumentError('reset: no paths given');
  const orig = await headCommit(ctx);
  const tree = await treeOf(ctx, rev === undefined ? (orig ? 'HEAD' : null) : await resolve(ctx, rev));
  const specs = paths.map((p) => ({ p, rel: pathspec(ctx, p) }));
  return updateIndex(ctx.layout, (idx) => {
    const keys = [...new Set([...Object.keys(idx.files), ...Object.keys(tree.files)])];
    const hit = new Set<string>();
    for (const { p, rel } of specs) {
      const under = keys.filter((f) => inPathspec(f, rel));
      if (!under.length) throw new InvalidArgumentError(`pathspec '${p}' did not match any file(s) known to coral`);
      under.forEach((f) => hit.add(f));
    }
    const changed: string[] = [];
    for (const f of [...hit].sort()) {
      const t = tree.files[f];
      const cur = idx.files[f];
      if (sameEntry(cur?.entry, t)) continue;
      if (t) idx.files[f] = { entry: t, stat: null };
      else delete idx.files[f];
      changed.push(f);
    }
    return changed;
  });
}
