/**
 * `merge`: three-way, tensor-aware merging of a revision into HEAD, and the
 * in-progress controls (`mergeContinue`, `mergeAbort`). The pieces live in
 * lib/merge/: parameters (params.ts), the planner (planner.ts), prepared files
 * (prepared.ts), MERGE_STATE (state.ts), try-and-vet (try.ts), strategies
 * (strategies.ts, registry.ts, strategies/<name>.ts). Design notes: docs/merge.md.
 *
 * Sequence of a merge commit (crash-safe):
 *  1. plan: classify every file and tensor against the merge base, resolve
 *     conflicts, store merged segment objects (writer session, nothing visible
 *     to refs or the index). Unresolved conflicts without `noCommit` throw
 *     MergeConflictError here, leaving refs, index and files untouched.
 *  2. publish the objects, write `.coral/MERGE_STATE` atomically (orig, theirs,
 *     the merged tree inline, applied = false).
 *  3. rewrite changed worktree files and the index; state.applied = true.
 *  4. commit with parents [HEAD, theirs]; remove MERGE_STATE.
 * A crash after 2 leaves a state from which `--continue` (re-applies the tree
 * when needed, then commits) or `--abort` (restores ORIG's files and index)
 * works. gc keeps `orig`, `theirs` and the inline tree alive.
 *
 * Committing is the one thing merge does not do itself: the context carries a
 * `commit` (the Repository facade's, which is the commit command), so this
 * module imports no Repository.
 *
 * @example
 * const r = await merge(ctx, 'feature', { strategy: 'ties', density: 0.2 });
 * r.commit; r.resolved // [{ file: 'model.safetensors', tensor: 'w', strategy: 'ties' }]
 */
import { commitTree, currentBranch, headCommit, resolve, treeOf, withWriter, type RepoContext } from '../context';
import { InProgressError, InvalidArgumentError, MergeConflictError, invalidParameter } from '../errors';
import { mergeConfig, paramsRecord, type MergeParams } from '../merge/params';
import { conflictError, planMerge, type MergeConflict, type MergeItem } from '../merge/planner';
import type { PreparedFiles } from '../merge/prepared';
import { openConflicts, readMergeState, removeMergeState, writeMergeState, type MergeStateFile } from '../merge/state';
import type { MergeStrategyName } from '../merge/strategies';
import { classifyFiles } from '../merge/three-way';
import { fileTable, type Signature } from '../models';
import { mergeBase } from '../refs/ancestry';
import { crashPoint } from '../util/crash';
import { applyTree, checkSwitch } from '../worktree/apply-tree';

export type { MergeParams } from '../merge/params';
export type { MergeConflict, MergeItem } from '../merge/planner';
export { markResolved, type MergeStateFile } from '../merge/state';
export { mergeTry, type MergeTryStrategies, type TryCandidate } from '../merge/try';

export interface MergeOptions extends MergeParams {
  /** Always create a merge commit, even when HEAD could fast-forward. */
  noFf?: boolean;
  /** Refuse unless HEAD can fast-forward. */
  ffOnly?: boolean;
  /** Stop before committing: merged files in the worktree and index, MERGE_STATE written. */
  noCommit?: boolean;
  message?: string;
  author?: Partial<Signature>;
}

export interface MergeReport {
  status: 'up-to-date' | 'fast-forward' | 'merged' | 'pending';
  upToDate: boolean;
  fastForward: boolean;
  /** The new commit (merge or fast-forward target); null when nothing was committed. */
  commit: string | null;
  ours: string | null;
  theirs: string;
  /** The merge base used (the first of `bases`), null for an unrelated or fast-forward-from-unborn merge. */
  base: string | null;
  bases: string[];
  autoMerged: MergeItem[];
  conflicts: MergeConflict[];
  resolved: Array<{ file: string; tensor: string | null; strategy: MergeStrategyName }>;
  unresolved: MergeConflict[];
  notes: string[];
  written: string[];
  removed: string[];
}

/** A merge commit: the index with HEAD and the merged heads as parents. */
export interface MergeCommitRequest {
  message: string;
  extraParents: string[];
  metadata: Record<string, unknown>;
  author?: Partial<Signature>;
}

/** What merge needs beyond the context: the commit command (narrow, so merge imports no Repository). */
export interface MergeContext extends RepoContext {
  commit(opts: MergeCommitRequest): Promise<string>;
}

function emptyReport(theirs: string, ours: string | null): MergeReport {
  return {
    status: 'merged',
    upToDate: false,
    fastForward: false,
    commit: null,
    ours,
    theirs,
    base: null,
    bases: [],
    autoMerged: [],
    conflicts: [],
    resolved: [],
    unresolved: [],
    notes: [],
    written: [],
    removed: [],
  };
}

/** The merge in progress (.coral/MERGE_STATE), or null. */
export function mergeState(ctx: Pick<RepoContext, 'layout'>): MergeStateFile | null {
  return readMergeState(ctx);
}

export async function merge(ctx: MergeContext, other: string, opts: MergeOptions = {}): Promise<MergeReport> {
  if (typeof other !== 'string' || !other) throw invalidParameter('revision', 'branch or revision to merge', other);
  if (opts.noFf && opts.ffOnly) throw new InvalidArgumentError('--no-ff and --ff-only cannot be combined');
  if (readMergeState(ctx))
    throw new InProgressError(
      'a merge is already in progress; finish it with `coral merge --continue` or `coral merge --abort`',
    );
  mergeConfig(opts); // validate before touching anything
  const theirsId = await resolve(ctx, other);
  const headId = await headCommit(ctx);
  const branch = await currentBranch(ctx);
  const report = emptyReport(theirsId, headId);
  const oursTree = await treeOf(ctx, headId);
  const theirsTree = await commitTree(ctx, theirsId);
  const bases = headId ? await mergeBase(headId, theirsId, ctx.meta) : [];
  report.bases = bases;
  if (headId && bases.includes(theirsId)) {
    return { ...report, status: 'up-to-date', upToDate: true, commit: null, base: theirsId };
  }
  // Merge's precondition: no local change anywhere (staged, unstaged, or an untracked file where
  // the merge puts one). The check is apply-tree's, in strict mode.
  await checkSwitch(ctx, oursTree, theirsTree, { strict: true, operation: 'merge' });
  const canFf = !headId || bases[0] === headId;
  if (canFf && !opts.noFf) {
    const { written, removed } = await applyTree(ctx, oursTree, theirsTree, { strict: true, operation: 'merge' });
    const ref = branch ? `refs/heads/${branch}` : 'HEAD';
    await ctx.refs.updateRef(ref, theirsId, { expectedOld: headId, message: `merge ${other}: Fast-forward` });
    const autoMerged: MergeItem[] = classifyFiles(oursTree.files, oursTree.files, theirsTree.files)
      .filter((f) => f.kind !== 'unchanged')
      .map((f) => ({ file: f.name, tensor: null, kind: f.kind }));
    return {
      ...report,
      status: 'fast-forward',
      fastForward: true,
      commit: theirsId,
      base: headId,
      autoMerged,
      written,
      removed,
    };
  }
  if (opts.ffOnly)
    throw new InvalidArgumentError(
      `not possible to fast-forward to ${other} (the histories have diverged); merge without --ff-only`,
    );
  const base = bases[0] ?? null;
  if (!base && !opts.allowUnrelated)
    throw new InvalidArgumentError(
      `refusing to merge unrelated histories (${other} shares no commit with HEAD); pass allowUnrelated / --allow-unrelated-histories`,
    );
  if (bases.length > 1)
    report.notes.push(`${bases.length} merge bases (criss-cross history); used the newest, ${bases[0]}`);
  const baseTree = await commitTree(ctx, base);
  report.base = base;

  let prepared: PreparedFiles | null = null;
  try {
    return await withWriter(ctx, 'merge', async (writer) => {
      const plan = await planMerge(ctx, writer, baseTree, oursTree, theirsTree, opts, {
        keepUnresolved: !!opts.noCommit,
      });
      prepared = plan.prepared;
      if (plan.unresolved.length && !opts.noCommit) throw conflictError(plan.unresolved, plan.cfg.strategy);
      await writer.flush();
      const resolved = plan.conflicts
        .filter((c) => c.resolvedBy !== null)
        .map((c) => ({ file: c.file, tensor: c.tensor, strategy: c.resolvedBy! }));
      const resolvedMap = fileTable<string>();
      for (const r of resolved) resolvedMap[r.tensor === null ? r.file : `${r.file}:${r.tensor}`] = r.strategy;
      const metadata: Record<string, unknown> = {
        merge: {
          strategy: plan.cfg.strategy,
          params: paramsRecord(plan.cfg),
          rules: plan.cfg.rules.map((r) => `${r.pattern}=${r.strategy}`),
          base,
          theirs: theirsId,
          resolved: resolvedMap,
          ...(plan.unresolved.length
            ? { unresolved: plan.unresolved.map((c) => (c.tensor === null ? c.file : `${c.file}:${c.tensor}`)) }
            : {}),
        },
      };
      const message = opts.message ?? `Merge ${other} into ${branch ?? 'HEAD'}`;
      const state: MergeStateFile = {
        version: 1,
        orig: headId!,
        theirs: [theirsId],
        base,
        branch,
        message,
        metadata,
        tree: plan.tree,
        applied: false,
        unresolved: plan.unresolved,
      };
      await writeMergeState(ctx, state);
      crashPoint('merge:after-state');
      const { written, removed } = await applyTree(ctx, oursTree, plan.tree, {
        strict: true,
        operation: 'merge',
        prepared: plan.prepared,
      });
      state.applied = true;
      await writeMergeState(ctx, state);
      crashPoint('merge:after-apply');
      const out: MergeReport = {
        ...report,
        autoMerged: plan.autoMerged,
        conflicts: plan.conflicts,
        resolved,
        unresolved: plan.unresolved,
        notes: [...report.notes, ...plan.notes],
        written,
        removed,
      };
      if (opts.noCommit || plan.unresolved.length) return { ...out, status: 'pending' };
      const id = await ctx.commit({ message, extraParents: [theirsId], metadata, author: opts.author });
      await removeMergeState(ctx);
      return { ...out, commit: id };
    });
  } finally {
    await (prepared as PreparedFiles | null)?.discard();
  }
}

/** Finishes a merge in progress: applies the merged tree if a crash interrupted it, then commits the index with both parents. */
export async function mergeContinue(
  ctx: MergeContext,
  opts: { message?: string; author?: Partial<Signature>; metadata?: Record<string, unknown> } = {},
): Promise<string> {
  const s = readMergeState(ctx);
  if (!s) throw new InvalidArgumentError('no merge in progress (no .coral/MERGE_STATE)');
  const open = openConflicts(s);
  if (open.length)
    throw new MergeConflictError(
      `cannot commit: ${open.length} unresolved merge conflict(s) in ${[...new Set(open.map((c) => c.file))].join(', ')}; ` +
        'fix the files and `coral add` them (or `coral merge --abort`)',
      { conflicts: open },
    );
  const head = await headCommit(ctx);
  if (head !== s.orig)
    throw new InvalidArgumentError(
      `HEAD moved since the merge started (was ${s.orig.slice(0, 12)}, now ${head?.slice(0, 12)}); run \`coral merge --abort\``,
    );
  if (!s.applied) {
    const origTree = await treeOf(ctx, s.orig);
    // Recovery: whatever a crash left half-applied ends as the merged tree.
    await applyTree(ctx, origTree, s.tree, { force: true });
    s.applied = true;
    await writeMergeState(ctx, s);
  }
  const metadata = { ...(opts.metadata ?? {}), ...s.metadata };
  if (s.unresolved.length) {
    const m = { ...(metadata.merge as Record<string, unknown>) };
    const resolved = { ...(m.resolved as Record<string, string>) };
    for (const c of s.unresolved) resolved[c.tensor === null ? c.file : `${c.file}:${c.tensor}`] = 'manual';
    m.resolved = resolved;
    delete m.unresolved;
    metadata.merge = m;
  }
  const id = await ctx.commit({
    message: opts.message ?? s.message,
    extraParents: s.theirs,
    metadata,
    author: opts.author,
  });
  await removeMergeState(ctx);
  return id;
}

/** Abandons a merge in progress: the worktree and index go back to ORIG_HEAD; HEAD never moved. */
export async function mergeAbort(ctx: RepoContext): Promise<{ orig: string; written: string[]; removed: string[] }> {
  const s = readMergeState(ctx);
  if (!s) throw new InvalidArgumentError('no merge in progress (no .coral/MERGE_STATE)');
  const origTree = await treeOf(ctx, s.orig);
  // Everything the merge (or the user since) touched goes back to orig; force also resets what the index holds.
  const r = await applyTree(ctx, s.tree, origTree, { force: true });
  await removeMergeState(ctx);
  return { orig: s.orig, written: r.written, removed: r.removed };
}
