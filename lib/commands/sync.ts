/**
 * `sync` (the predecessor's command, on git's footing): fetch from a remote; bring every local branch
 * that tracks it up to date (a branch behind its remote counterpart fast-forwards; one that diverged is
 * merged with the merge options, checked out for the merge when it is not the current branch); then push
 * every tracked branch that is ahead. It stops at the first merge that leaves conflicts, says which
 * branch and what conflicts, and pushes nothing; the current branch is restored unless the merge stopped
 * on another branch. A branch without an upstream counts as tracking the remote branch of its name when
 * that exists.
 *
 * @example
 * const r = await sync(ctx, 'origin', { strategy: 'average' });
 * r.stopped // null, or { branch: 'main', conflicts: [...] }
 */
import * as fs from 'node:fs';
import { currentBranch } from '../context';
import { InvalidArgumentError, MergeConflictError } from '../errors';
import { isAncestor } from '../refs/ancestry';
import { trackingRef, upstreamOf } from '../remote/config';
import { openRemote } from '../remote/open';
import { checkout } from './checkout';
import { fetchFrom, type FetchReport } from './fetch';
import { merge, type MergeConflict, type MergeContext, type MergeOptions, type MergeReport } from './merge';
import { mergeSource } from './pull';
import { pushTo, type PushReport } from './push';
import { remoteOpenOptions, remoteTarget } from './remote';

export interface SyncOptions extends MergeOptions {
  endpoint?: string;
}

export interface SyncBranchReport {
  branch: string;
  /** The remote branch it tracks (short name). */
  upstream: string;
  action: 'up-to-date' | 'fast-forward' | 'merged' | 'ahead' | 'new' | 'conflict';
  merge?: MergeReport;
}

export interface SyncReport {
  fetch: FetchReport;
  branches: SyncBranchReport[];
  push: PushReport | null;
  /** The merge that stopped the sync (nothing was pushed), or null. */
  stopped: { branch: string; conflicts: MergeConflict[] } | null;
}

/** `coral sync [<remote>]` with merge options. */
export async function sync(ctx: MergeContext, remoteArg?: string, opts: SyncOptions = {}): Promise<SyncReport> {
  const target = await remoteTarget(ctx, remoteArg, { endpoint: opts.endpoint });
  if (!target.name) throw new InvalidArgumentError('sync needs a configured remote (`coral remote add`), not a URL');
  const name = target.name;
  const { endpoint: _e, ...mopts } = opts;
  void _e;
  const remote = await openRemote(target.url, { create: true, ...remoteOpenOptions(target) });
  try {
    const f = await fetchFrom(ctx, target, remote);
    const original = await currentBranch(ctx);
    const tracked: Array<{ branch: string; upstream: string }> = [];
    for (const r of await ctx.refs.listRefs('refs/heads/')) {
      const b = r.name.slice('refs/heads/'.length);
      const up = upstreamOf(ctx.config, b);
      if (up ? up.remote === name : b in f.heads || b === original)
        tracked.push({ branch: b, upstream: mergeSource(ctx, b, name) });
    }
    // The current branch last, so the worktree ends where it started.
    tracked.sort((a, b) => Number(a.branch === original) - Number(b.branch === original));
    const branches: SyncBranchReport[] = [];
    let stopped: SyncReport['stopped'] = null;
    let switched = false;
    for (const t of tracked) {
      const local = (await ctx.refs.readRef(`refs/heads/${t.branch}`))!;
      const theirs = await ctx.refs.readRef(trackingRef(name, `refs/heads/${t.upstream}`));
      const rep: SyncBranchReport = { branch: t.branch, upstream: t.upstream, action: 'up-to-date' };
      branches.push(rep);
      if (theirs === null) {
        rep.action = 'new';
        continue;
      }
      if (theirs === local || (await isAncestor(theirs, local, ctx.meta))) {
        rep.action = theirs === local ? 'up-to-date' : 'ahead';
        continue;
      }
      const behind = await isAncestor(local, theirs, ctx.meta);
      if (behind && t.branch !== (await currentBranch(ctx))) {
        await ctx.refs.updateRef(`refs/heads/${t.branch}`, theirs, {
          expectedOld: local,
          message: `sync: fast-forward from ${name}/${t.upstream}`,
        });
        rep.action = 'fast-forward';
        continue;
      }
      if (t.branch !== (await currentBranch(ctx))) {
        await checkout(ctx, t.branch);
        switched = true;
      }
      try {
        const m = await merge(ctx, theirs, {
          ...mopts,
          message: mopts.message ?? `Merge branch '${t.upstream}' of ${target.url}`,
        });
        rep.merge = m;
        rep.action = m.fastForward ? 'fast-forward' : 'merged';
        if (m.unresolved.length || !m.commit) {
          rep.action = 'conflict';
          stopped = { branch: t.branch, conflicts: m.unresolved };
          break;
        }
      } catch (e) {
        if (!(e instanceof MergeConflictError)) throw e;
        rep.action = 'conflict';
        stopped = {
          branch: t.branch,
          conflicts: ((e.data as { conflicts?: MergeConflict[] } | undefined)?.conflicts ?? []).slice(),
        };
        break;
      }
    }
    // Back to where the user was, unless a merge is in progress on another branch (--no-commit, or
    // conflicts left in the worktree): a refused merge leaves files untouched, so returning is safe.
    if (switched && original && !fs.existsSync(ctx.layout.mergeState)) await checkout(ctx, original);
    if (stopped) return { fetch: f, branches, push: null, stopped };
    const ahead: string[] = [];
    for (const b of branches) {
      const local = await ctx.refs.readRef(`refs/heads/${b.branch}`);
      const theirs = f.heads[b.upstream] ?? null;
      if (local && local !== theirs) ahead.push(`${b.branch}:${b.upstream}`);
    }
    const p = ahead.length ? await pushTo(ctx, target, remote, { refspecs: ahead }) : null;
    return { fetch: f, branches, push: p, stopped: null };
  } finally {
    await remote.close();
  }
}
