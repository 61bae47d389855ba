/**
 * Branch listings as `coral branch` prints them: local branches, and with
 * `all` the remote-tracking ones under refs/remotes/ too (shown as
 * `remotes/<remote>/<branch>`, as git shows them); with `verbose`, each tip's
 * subject line.
 *
 * @example
 * await listBranches(repo, { all: true, verbose: true })
 * // [{ name: 'main', ref: 'refs/heads/main', id, current: true, remote: false, subject: 'base model' }, …]
 */
import type { MetaStore } from '../odb/meta-store';
import type { RefStore } from '../refs/refs';

export interface BranchInfo {
  /** `main`, or `remotes/origin/main` for a remote-tracking branch. */
  name: string;
  ref: string;
  id: string;
  current: boolean;
  remote: boolean;
  /** First line of the tip commit's message (with `verbose`). */
  subject?: string;
}

export async function listBranches(
  ctx: { readonly refs: RefStore; readonly meta: MetaStore; currentBranch(): Promise<string | null> },
  opts: { all?: boolean; remotes?: boolean; verbose?: boolean } = {},
): Promise<BranchInfo[]> {
  const cur = await ctx.currentBranch();
  const out: BranchInfo[] = [];
  if (!opts.remotes)
    for (const r of await ctx.refs.listRefs('refs/heads/')) {
      const name = r.name.slice('refs/heads/'.length);
      out.push({ name, ref: r.name, id: r.id, current: name === cur, remote: false });
    }
  if (opts.all || opts.remotes)
    for (const r of await ctx.refs.listRefs('refs/remotes/'))
      out.push({ name: r.name.slice('refs/'.length), ref: r.name, id: r.id, current: false, remote: true });
  if (opts.verbose) for (const b of out) b.subject = (await ctx.meta.readCommit(b.id)).message.split('\n')[0];
  return out;
}
