/**
 * `branch`: create, delete and list branches. Listings as `coral branch` prints them: local branches, and with
 * `all` the remote-tracking ones under refs/remotes/ too (shown as
 * `remotes/<remote>/<branch>`, as git shows them); with `verbose`, each tip's
 * subject line; with `upstream` (`branch -vv`), each local branch's upstream and ahead/behind counts.
 *
 * @example
 * await listBranches(repo, { all: true, verbose: true })
 * // [{ name: 'main', ref: 'refs/heads/main', id, current: true, remote: false, subject: 'base model' }, …]
 */
import { currentBranch, headCommit, resolve, type RepoContext } from '../context';
import { AlreadyExistsError, InvalidArgumentError, RefNotFoundError } from '../errors';
import { checkShortRefName } from '../models';
import { isAncestor } from '../refs/ancestry';
import { trackingRef, upstreamOf } from '../remote/config';
import { aheadBehind } from './status';

export interface BranchInfo {
  /** `main`, or `remotes/origin/main` for a remote-tracking branch. */
  name: string;
  ref: string;
  id: string;
  current: boolean;
  remote: boolean;
  /** First line of the tip commit's message (with `verbose`). */
  subject?: string;
  /**
   * With `upstream` (`branch -vv`), a local branch's upstream (`origin/main`), and how many commits the
   * branch is ahead of and behind its remote-tracking ref; `gone` when that ref does not exist (never
   * fetched, or pruned after the remote branch was deleted), with both counts 0.
   */
  upstream?: { name: string; ahead: number; behind: number; gone: boolean };
}

export async function listBranches(
  ctx: Pick<RepoContext, 'refs' | 'meta'> & Partial<Pick<RepoContext, 'config'>>,
  opts: { all?: boolean; remotes?: boolean; verbose?: boolean; upstream?: boolean } = {},
): Promise<BranchInfo[]> {
  const cur = await currentBranch(ctx);
  const out: BranchInfo[] = [];
  if (!opts.remotes)
    for (const r of await ctx.refs.listRefs('refs/heads/')) {
      const name = r.name.slice('refs/heads/'.length);
      out.push({ name, ref: r.name, id: r.id, current: name === cur, remote: false });
    }
  if (opts.all || opts.remotes)
    for (const r of await ctx.refs.listRefs('refs/remotes/'))
      out.push({ name: r.name.slice('refs/'.length), ref: r.name, id: r.id, current: false, remote: true });
  if (opts.verbose || opts.upstream)
    for (const b of out) b.subject = (await ctx.meta.readCommit(b.id)).message.split('\n')[0];
  if (opts.upstream && ctx.config)
    for (const b of out) {
      const up = b.remote ? null : upstreamOf(ctx.config, b.name);
      if (!up) continue;
      const ref = trackingRef(up.remote, up.merge);
      const name = ref.slice('refs/remotes/'.length);
      const theirs = await ctx.refs.readRef(ref);
      b.upstream = theirs
        ? { name, ...(await aheadBehind(ctx, b.id, theirs)), gone: false }
        : { name, ahead: 0, behind: 0, gone: true };
    }
  return out;
}

/** Local branches, the current one marked (Repository.branches). */
export async function branches(
  ctx: Pick<RepoContext, 'refs' | 'meta'>,
): Promise<Array<{ name: string; id: string; current: boolean }>> {
  return (await listBranches(ctx)).map(({ name, id, current }) => ({ name, id, current }));
}

/** Creates `name` at `startRev` (default HEAD); `force` moves an existing branch that is not checked out. */
export async function createBranch(
  ctx: RepoContext,
  name: string,
  startRev = 'HEAD',
  opts: { force?: boolean } = {},
): Promise<string> {
  checkShortRefName(name);
  const id = await resolve(ctx, startRev);
  const ref = `refs/heads/${name}`;
  const existing = await ctx.refs.readRef(ref);
  if (existing && !opts.force)
    throw new AlreadyExistsError(`a branch named '${name}' already exists`, { branch: name });
  // git: moving the checked-out branch under the worktree would stage the difference as a change.
  if (existing && (await currentBranch(ctx)) === name)
    throw new InvalidArgumentError(`cannot force update the branch '${name}' used by worktree at '${ctx.worktree}'`, {
      branch: name,
    });
  await ctx.refs.updateRef(ref, id, {
    expectedOld: opts.force ? undefined : null,
    message: `branch: Created from ${startRev}`,
  });
  return id;
}

/** Deletes a branch that is not checked out; unless `force`, only one merged into HEAD. */
export async function deleteBranch(ctx: RepoContext, name: string, opts: { force?: boolean } = {}): Promise<void> {
  const ref = `refs/heads/${checkShortRefName(name)}`;
  const id = await ctx.refs.readRef(ref);
  if (!id) throw new RefNotFoundError(`branch '${name}' not found`);
  if ((await currentBranch(ctx)) === name)
    throw new InvalidArgumentError(`cannot delete branch '${name}': it is checked out`);
  if (!opts.force) {
    const head = await headCommit(ctx);
    if (head && !(await isAncestor(id, head, ctx.meta)))
      throw new InvalidArgumentError(`branch '${name}' is not fully merged; use -D to delete it anyway`);
  }
  await ctx.refs.deleteRef(ref, id);
}

/** The commit a local branch points at, or null when there is no such branch (`branch -d` prints it). */
export function branchTip(ctx: Pick<RepoContext, 'refs'>, name: string): Promise<string | null> {
  return ctx.refs.readRef(`refs/heads/${name}`);
}
