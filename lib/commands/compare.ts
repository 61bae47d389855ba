/**
 * `compare`: two commits (or tags) side by side, as `coral compare` prints
 * them: each side's commit, file/tensor/byte counts and tag metrics, the
 * tensor-aware diff between them and its summary.
 *
 * @example
 * const r = await compare(repo, { a: 'v1', b: 'v2' });
 * r.a.tensors; r.b.metrics.accuracy; r.summary.meanRelL2; r.changes[0].tensors;
 */
import { readCommit, readTree, resolve, type RepoContext } from '../context';
import type { Commit, Tree } from '../models';
import { diffSides, summarizeChanges, type DiffSummary, type FileChange } from '../diff/tensor-diff';

export interface CompareOptions {
  /** The left revision (a commit, branch or tag). */
  a: string;
  /** The right revision. */
  b: string;
}

/** One side of a comparison. */
export interface CompareSide {
  /** The revision as given. */
  rev: string;
  /** The commit id it resolves to. */
  id: string;
  commit: Commit;
  /** Number of files in the commit's tree. */
  files: number;
  /** Sum of the files' sizes. */
  bytes: number;
  /** Number of tensors over all files. */
  tensors: number;
  /**
   * The commit's metrics (`metadata.metrics`, as the CheckpointManager and ExperimentTracker record
   * them), overridden by those of the annotated tag named `rev` (`coral tag --metric`); else `{}`.
   */
  metrics: Record<string, unknown>;
}

export interface CompareReport {
  a: CompareSide;
  b: CompareSide;
  /** Counts and extremes of `changes` (summarizeChanges). */
  summary: DiffSummary;
  /** Per-file, per-tensor changes from a to b, with metrics. */
  changes: FileChange[];
}

/** The metrics of the tag named exactly `name` (as `Repository.tags()` lists it), or `{}`. */
async function tagMetrics(ctx: Pick<RepoContext, 'refs' | 'meta'>, name: string): Promise<Record<string, unknown>> {
  for (const r of await ctx.refs.listRefs('refs/tags/')) {
    if (r.name.replace(/^refs\/tags\//, '') !== name) continue;
    try {
      return ((await ctx.meta.readTag(r.id)).metadata.metrics as Record<string, unknown>) ?? {};
    } catch {
      return {}; // a lightweight tag
    }
  }
  return {};
}

function commitMetrics(c: Commit): Record<string, unknown> {
  const m = c.metadata.metrics;
  return m && typeof m === 'object' && !Array.isArray(m) ? (m as Record<string, unknown>) : {};
}

async function side(ctx: Pick<RepoContext, 'refs' | 'meta'>, rev: string): Promise<CompareSide & { tree: Tree }> {
  const id = await resolve(ctx, rev);
  const commit = await readCommit(ctx, id);
  const tree = await readTree(ctx, commit.tree);
  const entries = Object.values(tree.files);
  return {
    rev,
    id,
    commit,
    tree,
    files: Object.keys(tree.files).length,
    bytes: entries.reduce((n, e) => n + e.size, 0),
    tensors: entries.reduce((n, e) => n + e.tensors.length, 0),
    metrics: { ...commitMetrics(commit), ...(await tagMetrics(ctx, rev)) },
  };
}

/** Compares two revisions: both sides' facts, the diff from a to b (with metrics) and its summary. */
export async function compare(
  ctx: Pick<RepoContext, 'refs' | 'meta' | 'reader'>,
  options: CompareOptions,
): Promise<CompareReport> {
  const { tree: ta, ...a } = await side(ctx, options.a);
  const { tree: tb, ...b } = await side(ctx, options.b);
  const changes = await diffSides(ctx.reader, ta, { kind: 'tree', tree: tb });
  return { a, b, summary: summarizeChanges(changes), changes };
}
