/**
 * `status`: what is staged against HEAD, what changed on disk against the
 * index (apply-tree's one dirty check), and the untracked files.
 *
 * @example
 * const { branch, files, untracked } = await status(ctx);
 */
import * as fs from 'node:fs';
import { commitTree, currentBranch, headCommit, type RepoContext } from '../context';
import { walkCommits } from '../refs/ancestry';
import { trackingRef, upstreamOf } from '../remote/config';
import { worktreeState } from '../worktree/apply-tree';
import { ignoreRules, walkWorktree } from '../worktree/ignore';
import { readIndex } from '../worktree/staging';

export interface FileStatus {
  path: string;
  /** staged vs HEAD */
  staged: 'added' | 'modified' | 'deleted' | null;
  /** worktree vs staged */
  unstaged: 'modified' | 'deleted' | null;
}

export interface StatusReport {
  branch: string | null;
  head: string | null;
  files: FileStatus[];
  untracked: string[];
  merging: boolean;
  /** The current branch's upstream (`branch.<b>.remote`/`merge`) and how far apart they are; null when none. */
  upstream: UpstreamStatus | null;
}

export interface UpstreamStatus {
  /** `origin/main`, as git shows it. */
  name: string;
  /** The remote-tracking ref, e.g. refs/remotes/origin/main. */
  ref: string;
  /** Commits on the branch that the upstream lacks, and the reverse; null when the tracking ref is gone. */
  ahead: number | null;
  behind: number | null;
}

/** Commits reachable from `a` but not from `b`, and the reverse. */
export async function aheadBehind(
  ctx: Pick<RepoContext, 'meta'>,
  a: string,
  b: string,
): Promise<{ ahead: number; behind: number }> {
  const reach = async (id: string) => {
    const seen = new Set<string>();
    for await (const c of walkCommits(id, ctx.meta)) seen.add(c.id);
    return seen;
  };
  const [ra, rb] = [await reach(a), await reach(b)];
  let ahead = 0;
  let behind = 0;
  for (const id of ra) if (!rb.has(id)) ahead++;
  for (const id of rb) if (!ra.has(id)) behind++;
  return { ahead, behind };
}

/** The upstream of the current branch with ahead/behind counts (`coral status`). */
export async function upstreamStatus(
  ctx: Pick<RepoContext, 'refs' | 'meta' | 'config'>,
): Promise<UpstreamStatus | null> {
  const branch = await currentBranch(ctx);
  const up = branch ? upstreamOf(ctx.config, branch) : null;
  if (!up) return null;
  const ref = trackingRef(up.remote, up.merge);
  const name = ref.slice('refs/remotes/'.length);
  const theirs = await ctx.refs.readRef(ref);
  const ours = await headCommit(ctx);
  if (!theirs) return { name, ref, ahead: null, behind: null };
  if (!ours) {
    let behind = 0;
    for await (const c of walkCommits(theirs, ctx.meta)) if (c) behind++;
    return { name, ref, ahead: 0, behind };
  }
  return { name, ref, ...(await aheadBehind(ctx, ours, theirs)) };
}

export { ignoreRules };

/**
 * Files and symlinks under `dir` (absolute), worktree-relative, skipping
 * .coral, coral temp files and ignored paths (.coralignore, .gitignore; see
 * lib/worktree/ignore.ts) unless tracked or `ignored: true`.
 */
export async function listWorktree(
  ctx: Pick<RepoContext, 'worktree' | 'layout' | 'config'>,
  dir = ctx.worktree,
  opts: { ignored?: boolean } = {},
): Promise<string[]> {
  const tracked = new Set(Object.keys(readIndex(ctx.layout).files));
  return walkWorktree(ctx.worktree, dir, { rules: opts.ignored ? null : ignoreRules(ctx), tracked });
}

export async function status(ctx: RepoContext): Promise<StatusReport> {
  const headId = await headCommit(ctx);
  const tree = await commitTree(ctx, headId);
  const idx = readIndex(ctx.layout);
  const all = new Set([...Object.keys(tree.files), ...Object.keys(idx.files)]);
  const files: FileStatus[] = [];
  for (const p of [...all].sort()) {
    const t = tree.files[p];
    const s = idx.files[p];
    const staged = !s
      ? 'deleted'
      : !t
        ? 'added'
        : t.sha256 !== s.entry.sha256 || t.size !== s.entry.size
          ? 'modified'
          : null;
    let unstaged: FileStatus['unstaged'] = null;
    if (s) {
      // One check for status and every switch: apply-tree's (symlink entries compare link targets).
      const state = await worktreeState(ctx.layout, p, s);
      unstaged = state === 'missing' ? 'deleted' : state === 'clean' ? null : 'modified';
    }
    if (staged || unstaged) files.push({ path: p, staged, unstaged });
  }
  const untracked = (await listWorktree(ctx)).filter((f) => !idx.files[f]);
  return {
    branch: await currentBranch(ctx),
    head: headId,
    files,
    untracked,
    merging: fs.existsSync(ctx.layout.mergeState),
    upstream: await upstreamStatus(ctx),
  };
}
