/**
 * `checkout`: switches HEAD to a branch (or detaches at a revision) and
 * rewrites the worktree byte-for-byte through apply-tree's one dirty check;
 * with paths, restores only those files from a revision, or from the index
 * (`checkout -- <paths>`; HEAD stays).
 *
 * @example
 * await checkout(ctx, 'feature', { create: true });
 * await checkout(ctx, 'HEAD~1', { paths: ['model.safetensors'] });
 */
import * as fsp from 'node:fs/promises';
import { commitTree, currentBranch, headCommit, headTree, pathspec, resolve, type RepoContext } from '../context';
import { AlreadyExistsError, InvalidArgumentError, RefNotFoundError } from '../errors';
import { checkShortRefName, isValidRefName, type FileEntry, type LossyMark } from '../models';
import { applyTree, inPathspec, worktreeState } from '../worktree/apply-tree';
import { checkWritable, materializeWorktreeFile, statCacheOf } from '../worktree/files';
import { readIndex, updateIndex } from '../worktree/staging';
import { setUpstream } from '../remote/config';
import { createBranch } from './branch';

/** The one remote-tracking branch named `refs/remotes/<remote>/<name>`, or null (none, or several remotes). */
async function remoteBranchFor(
  ctx: Pick<RepoContext, 'refs'>,
  name: string,
): Promise<{ ref: string; remote: string } | null> {
  if (!isValidRefName(`refs/heads/${name}`)) return null;
  const hits = (await ctx.refs.listRefs('refs/remotes/')).filter((r) => {
    const rest = r.name.slice('refs/remotes/'.length);
    const slash = rest.indexOf('/');
    return slash > 0 && rest.slice(slash + 1) === name;
  });
  if (hits.length !== 1) return null;
  const rest = hits[0].name.slice('refs/remotes/'.length);
  return { ref: hits[0].name, remote: rest.slice(0, rest.indexOf('/')) };
}

export interface CheckoutOptions {
  force?: boolean;
  create?: boolean;
  start?: string;
  detach?: boolean;
  paths?: string[];
}

export interface CheckoutReport {
  head: string;
  branch: string | null;
  written: string[];
  removed: string[];
  kept: string[];
  /**
   * Written files stored lossy (their entry's `lossy` mark): not byte-exact
   * copies of what was added, with the recorded error. Absent when none.
   */
  lossy?: Array<{ path: string } & LossyMark>;
}

/** The report with `lossy` listing the written files whose entries are lossy. */
function noteLossy(r: CheckoutReport, files: Record<string, FileEntry>): CheckoutReport {
  const lossy = r.written.flatMap((p) => (files[p]?.lossy ? [{ path: p, ...files[p].lossy }] : []));
  return lossy.length ? { ...r, lossy } : r;
}

/**
 * Refuses to overwrite uncommitted changes unless `force`. With `paths`, only
 * restores those files from `target` (see restorePaths).
 */
export async function checkout(ctx: RepoContext, target: string, opts: CheckoutOptions = {}): Promise<CheckoutReport> {
  if (opts.paths?.length) return restorePaths(ctx, target, opts.paths);
  let branch: string | null = null;
  let id: string;
  if (opts.create) {
    checkShortRefName(target);
    if (await ctx.refs.readRef(`refs/heads/${target}`))
      throw new AlreadyExistsError(`a branch named '${target}' already exists`, { branch: target });
    if (opts.start === undefined && !(await headCommit(ctx))) {
      // Unborn HEAD: the new branch is unborn too; index and files stay as they are (git).
      await ctx.refs.setHeadSymbolic(`refs/heads/${target}`);
      return { head: '', branch: target, written: [], removed: [], kept: [] };
    }
    id = await resolve(ctx, opts.start ?? 'HEAD');
    branch = target;
  } else {
    // A branch name first (git's rule), then any revision: the result is a detached HEAD.
    const local =
      !opts.detach && isValidRefName(`refs/heads/${target}`) ? await ctx.refs.readRef(`refs/heads/${target}`) : null;
    const current = target === 'HEAD' && !opts.detach ? await currentBranch(ctx) : null;
    if (current) {
      // `checkout HEAD` stays on the branch (git), it does not detach.
      branch = current;
      id = await resolve(ctx, 'HEAD');
    } else if (local) {
      branch = target;
      id = local;
    } else {
      try {
        id = await resolve(ctx, target);
      } catch (e) {
        // git's DWIM: `checkout feature`, naming no revision but exactly one remote's branch
        // (origin/feature), creates the branch feature tracking it.
        const tracking = e instanceof RefNotFoundError && !opts.detach ? await remoteBranchFor(ctx, target) : null;
        if (!tracking) throw e;
        const r = await checkout(ctx, target, { ...opts, create: true, start: tracking.ref });
        await setUpstream(ctx.config, target, { remote: tracking.remote, merge: `refs/heads/${target}` });
        return r;
      }
    }
  }
  const from = await headTree(ctx);
  const to = await commitTree(ctx, id);
  // One dirty check for every switch (lib/worktree/apply-tree.ts): edits carry over or the switch refuses.
  const r = await applyTree(ctx, from, to, { force: opts.force, operation: 'checkout' });
  if (opts.create) await createBranch(ctx, target, id);
  if (branch) await ctx.refs.setHeadSymbolic(`refs/heads/${branch}`);
  else await ctx.refs.setHeadDetached(id);
  // As git does after a switch: a merge in progress is forgotten (what it staged stays staged).
  await fsp.rm(ctx.layout.mergeState, { force: true });
  return noteLossy({ head: id, branch, ...r }, to.files);
}

/**
 * `checkout -- <paths>`: the worktree files under `paths` take their staged
 * (index) version back, discarding unstaged edits as git does; the index and
 * HEAD stay. Files that already hold the staged bytes are not rewritten.
 */
export async function restoreFromIndex(ctx: RepoContext, paths: string[]): Promise<CheckoutReport> {
  const rels = paths.map((p) => pathspec(ctx, p));
  const idx = readIndex(ctx.layout);
  const keys = new Set<string>();
  for (const rel of rels) {
    const under = Object.keys(idx.files).filter((f) => inPathspec(f, rel));
    if (!under.length) throw new InvalidArgumentError(`pathspec '${rel}' did not match any file known to coral`);
    under.forEach((f) => keys.add(f));
  }
  const sorted = [...keys].sort();
  await checkWritable(ctx.layout, sorted);
  const written: string[] = [];
  for (const f of sorted) {
    if ((await worktreeState(ctx.layout, f, idx.files[f])) === 'clean') continue;
    await materializeWorktreeFile(ctx.reader, ctx.layout, f, idx.files[f].entry, { clobber: true });
    written.push(f);
  }
  await updateIndex(ctx.layout, async (ix) => {
    for (const f of written) {
      const cur = ix.files[f];
      if (!cur || cur.entry.sha256 !== idx.files[f].entry.sha256) continue; // restaged meanwhile: leave it
      ix.files[f] = { entry: cur.entry, stat: await statCacheOf(ctx.layout, f) };
    }
  });
  const head = await headCommit(ctx);
  const entries = Object.fromEntries(written.map((f) => [f, idx.files[f].entry]));
  return noteLossy({ head: head ?? '', branch: await currentBranch(ctx), written, removed: [], kept: [] }, entries);
}

/** `checkout <rev> -- <paths>`: the files under `paths` take `rev`'s version, on disk and in the index. */
export async function restorePaths(ctx: RepoContext, rev: string, paths: string[]): Promise<CheckoutReport> {
  const id = await resolve(ctx, rev);
  const tree = await commitTree(ctx, id);
  const written: string[] = [];
  const rels = paths.map((p) => pathspec(ctx, p));
  for (const rel of rels) {
    const keys = Object.keys(tree.files).filter((f) => inPathspec(f, rel));
    if (!keys.length) throw new InvalidArgumentError(`pathspec '${rel}' did not match any file in ${rev}`);
    await checkWritable(ctx.layout, keys);
    for (const f of keys) {
      await materializeWorktreeFile(ctx.reader, ctx.layout, f, tree.files[f]);
      written.push(f);
    }
  }
  await updateIndex(ctx.layout, async (ix) => {
    for (const f of written) {
      ix.files[f] = { entry: tree.files[f], stat: await statCacheOf(ctx.layout, f) };
    }
  });
  return noteLossy(
    { head: (await headCommit(ctx)) ?? id, branch: await currentBranch(ctx), written, removed: [], kept: [] },
    tree.files,
  );
}
