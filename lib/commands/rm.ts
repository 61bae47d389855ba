/**
 * `rm`, as git does it: removes tracked files from the index and the worktree,
 * refusing (before anything changes) to lose a local modification:
 *
 * - without --cached: refuses a file whose staged entry differs from HEAD, or
 *   whose worktree file differs from the index, unless `force`;
 * - --cached (untrack only, the file stays): refuses when the staged entry
 *   matches neither HEAD nor the worktree file (it would exist nowhere), unless `force`;
 * - a directory needs `recursive` (-r); a pathspec that matches no tracked
 *   file is an error.
 *
 * @example
 * await removePaths(repo, ['old.safetensors']);
 * await removePaths(repo, ['runs'], { recursive: true, cached: true });
 */
import { DirtyWorktreeError, InvalidArgumentError } from '../errors';
import { headTree, pathspec, type RepoContext } from '../context';
import type { FileEntry } from '../models';
import { inPathspec, sameEntry, worktreeState } from '../worktree/apply-tree';
import { updateIndex } from '../worktree/staging';
import { removeWorktreeFile } from '../worktree/files';

/** What rm needs from a repository: the repository context (Repository is one). */
export type RemoveContext = RepoContext;

export interface RemoveOptions {
  /** Untrack only; the worktree file stays. */
  cached?: boolean;
  /** Remove even with local modifications. */
  force?: boolean;
  /** Allow a directory pathspec (-r). */
  recursive?: boolean;
}

export async function removePaths(ctx: RemoveContext, paths: string[], opts: RemoveOptions = {}): Promise<string[]> {
  if (!paths.length) throw new InvalidArgumentError('rm: no paths given');
  const specs = paths.map((p) => ({ p, rel: pathspec(ctx, p) }));
  const tree = await headTree(ctx);
  return updateIndex(ctx.layout, async (idx) => {
    const files = new Set<string>();
    for (const { p, rel } of specs) {
      const keys = Object.keys(idx.files).filter((f) => inPathspec(f, rel));
      if (!keys.length) throw new InvalidArgumentError(`pathspec '${p}' did not match any tracked files`);
      if (!opts.recursive && !(keys.length === 1 && keys[0] === rel))
        throw new InvalidArgumentError(`not removing '${p}' recursively without -r`);
      keys.forEach((f) => files.add(f));
    }
    const sorted = [...files].sort();
    if (!opts.force) {
      const problems: Array<{ path: string; why: string }> = [];
      for (const f of sorted) {
        const s = idx.files[f];
        const h: FileEntry | undefined = tree.files[f];
        const stagedDiffers = !sameEntry(s.entry, h);
        const wtDiffers = (await worktreeState(ctx.layout, f, s)) === 'modified';
        if (opts.cached) {
          if (stagedDiffers && wtDiffers)
            problems.push({ path: f, why: 'staged content different from both the file and HEAD' });
        } else if (stagedDiffers && wtDiffers)
          problems.push({ path: f, why: 'staged content different from both the file and HEAD' });
        else if (stagedDiffers)
          problems.push({
            path: f,
            why: 'changes staged in the index (use --cached to keep the file, or -f to force removal)',
          });
        else if (wtDiffers)
          problems.push({
            path: f,
            why: 'local modifications (use --cached to keep the file, or -f to force removal)',
          });
      }
      if (problems.length) {
        const shown = problems
          .slice(0, 10)
          .map((x) => `${x.path} (${x.why})`)
          .join(', ');
        throw new DirtyWorktreeError(`the following file(s) would lose changes: ${shown}`, {
          paths: problems.map((x) => x.path),
        });
      }
    }
    for (const f of sorted) {
      delete idx.files[f];
      // Never through a symlinked directory; emptied directories go, as git does.
      if (!opts.cached) await removeWorktreeFile(ctx.layout, f);
    }
    return sorted;
  });
}
