/**
 * `commit`: records the index as a new commit on the current branch (or a
 * detached HEAD). The ref moves by compare-and-swap; the index lock is held
 * throughout so concurrent committers serialise and no update is lost.
 *
 * Concluding a merge in progress is merge's `--continue` (Repository.commit
 * dispatches to it); this command records the index as it is.
 *
 * @example
 * const id = await commit(ctx, { message: 'epoch 3', metadata: { loss: 0.41 } });
 */
import { readCommit, signature, withWriter, type RepoContext } from '../context';
import { NothingToCommitError, invalidParameter } from '../errors';
import { encodeCommit, encodeTree, sha256Hex, type Commit, type Signature } from '../models';
import { crashPoint } from '../util/crash';
import { treeOfIndex, updateIndex } from '../worktree/staging';

export interface CommitOptions {
  message: string;
  author?: Partial<Signature>;
  metadata?: Record<string, unknown>;
  /** Allow a commit whose tree equals its parent's. */
  allowEmpty?: boolean;
  /** Extra parents after HEAD (merge commits). */
  extraParents?: string[];
  /** Stage modifications and deletions of tracked files first (`commit -a`). */
  all?: boolean;
}

export async function commit(ctx: RepoContext, opts: CommitOptions): Promise<string> {
  // add.ts (and the ingest pipeline behind it) loads only for `-a`: a plain commit reads no worktree file.
  if (opts?.all) await (await import('./add')).stageTracked(ctx);
  if (!opts || typeof opts.message !== 'string' || !opts.message.trim())
    throw invalidParameter('message', 'non-empty string', opts?.message);
  return withWriter(ctx, 'commit', async () => {
    let result = '';
    await updateIndex(ctx.layout, async (idx) => {
      const head = await ctx.refs.readHead();
      const parent = await ctx.refs.resolveHead();
      // A meta object's id is the sha256 of its bytes: the tree is written beside the commit (below), and
      // an unchanged tree is refused before anything is written.
      const treeBytes = encodeTree(treeOfIndex(idx));
      const treeId = sha256Hex(treeBytes);
      if (parent && !opts.allowEmpty && !opts.extraParents?.length) {
        const pc = await readCommit(ctx, parent);
        if (pc.tree === treeId)
          throw new NothingToCommitError('nothing to commit (the index matches HEAD); use `coral add` first');
      }
      if (!parent && Object.keys(idx.files).length === 0 && !opts.allowEmpty)
        throw new NothingToCommitError('nothing to commit; use `coral add <file>` first');
      const sig = signature(ctx, opts.author);
      const c: Commit = {
        tree: treeId,
        parents: [...(parent ? [parent] : []), ...(opts.extraParents ?? [])],
        author: sig,
        committer: sig,
        message: opts.message.endsWith('\n') ? opts.message : `${opts.message}\n`,
        metadata: opts.metadata ?? {},
      };
      // Both durable before the ref moves; a crash between leaves only unreachable objects (gc takes them).
      const [, id] = await Promise.all([ctx.meta.put(treeBytes), ctx.meta.put(encodeCommit(c))]);
      crashPoint('commit:before-ref');
      const summary = `commit${c.parents.length > 1 ? ' (merge)' : parent ? '' : ' (initial)'}: ${opts.message.split('\n')[0]}`;
      await ctx.refs.updateRef(head.kind === 'symbolic' ? head.target : 'HEAD', id, {
        expectedOld: parent,
        message: summary,
        who: sig,
      });
      result = id;
    });
    return result;
  });
}
