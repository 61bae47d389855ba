/**
 * `log`: history queries behind `coral log`: revision ranges (`a..b`, `^a`, `a...b`),
 * path-limited history, a commit limit, topological order, and the ASCII graph
 * that `log --graph` draws.
 *
 * Path limiting follows git's default history simplification for display: a
 * commit is shown when the files under the paths differ from its parent's (for
 * a merge: from every parent's — a merge that takes one side unchanged is not
 * shown); a root commit is shown when it has files under the paths.
 *
 * @example
 * await logCommits(repo, { revs: ['main..feature'] });       // on feature, not on main
 * await logCommits(repo, { paths: ['ckpt/model.pt'], limit: 5 });
 * for (const row of logGraph(entries)) console.log(row.graph, row.id);
 */
import { headCommit, readTree, resolve, type RepoContext } from '../context';
import { InvalidArgumentError } from '../errors';
import type { Commit } from '../models/commit';
import type { LossyMark } from '../models/tree';
import { mergeBase, walkCommits } from '../refs/ancestry';

export interface HistoryEntry {
  id: string;
  commit: Commit;
}

export interface LogOptions {
  /**
   * Revisions to list (default HEAD). `a..b` lists what b reaches and a does not (an empty side is
   * HEAD), `^a` excludes what a reaches, `a...b` lists what either reaches but not both.
   */
  revs?: string[];
  /** Follow only first parents. */
  firstParent?: boolean;
  /** At most this many commits (0: none). */
  limit?: number;
  /** Worktree-relative posix paths (a directory covers its files); empty or absent: everything. */
  paths?: string[];
  /** Children before parents, one line of history at a time (as `--graph` needs). */
  topo?: boolean;
}

/** What history queries need from a repository (Repository satisfies it). */
export type HistoryContext = Pick<RepoContext, 'refs' | 'meta'>;

async function parseRevs(ctx: HistoryContext, revs: string[]): Promise<{ include: string[]; exclude: string[] }> {
  const include: string[] = [];
  const exclude: string[] = [];
  const head = (s: string) => (s === '' ? 'HEAD' : s);
  for (const r of revs) {
    const sym = r.indexOf('...');
    const dots = r.indexOf('..');
    if (sym >= 0) {
      const a = await resolve(ctx, head(r.slice(0, sym)));
      const b = await resolve(ctx, head(r.slice(sym + 3)));
      include.push(a, b);
      exclude.push(...(await mergeBase(a, b, ctx.meta)));
    } else if (dots >= 0) {
      exclude.push(await resolve(ctx, head(r.slice(0, dots))));
      include.push(await resolve(ctx, head(r.slice(dots + 2))));
    } else if (r.startsWith('^')) {
      exclude.push(await resolve(ctx, r.slice(1)));
    } else {
      include.push(await resolve(ctx, r));
    }
  }
  return { include, exclude };
}

function inScope(paths: string[]): (p: string) => boolean {
  const ps = paths.map((p) => p.replace(/\/+$/, '')).filter((p) => p !== '' && p !== '.');
  if (!ps.length) return () => true;
  return (p) => ps.some((q) => p === q || p.startsWith(`${q}/`));
}

/** The commits `coral log` shows, newest first (or topologically with `topo`). */
export async function logCommits(ctx: HistoryContext, opts: LogOptions = {}): Promise<HistoryEntry[]> {
  if (opts.limit !== undefined && (!Number.isInteger(opts.limit) || opts.limit < 0))
    throw new InvalidArgumentError(`Expected non-negative integer for limit but received ${opts.limit}`, {
      parameter: 'limit',
    });
  if (opts.limit === 0) return [];
  let include: string[];
  let exclude: string[] = [];
  if (opts.revs?.length) ({ include, exclude } = await parseRevs(ctx, opts.revs));
  else {
    const h = await headCommit(ctx);
    include = h ? [h] : [];
  }
  if (!include.length) return [];
  const excluded = new Set<string>();
  if (exclude.length) for await (const e of walkCommits(exclude, ctx.meta)) excluded.add(e.id);

  const scope = opts.paths?.length ? inScope(opts.paths) : null;
  const trees = new Map<string, Promise<Map<string, string>>>();
  // The files under the paths of a commit's tree, as path -> identity.
  const scoped = (treeId: string) => {
    let p = trees.get(treeId);
    if (!p) {
      p = readTree(ctx, treeId).then((t) => {
        const m = new Map<string, string>();
        for (const [f, e] of Object.entries(t.files)) if (scope!(f)) m.set(f, `${e.sha256}:${e.size}`);
        return m;
      });
      trees.set(treeId, p);
    }
    return p;
  };
  const same = (a: Map<string, string>, b: Map<string, string>) =>
    a.size === b.size && [...a].every(([k, v]) => b.get(k) === v);
  const changesPaths = async (c: Commit) => {
    const mine = await scoped(c.tree);
    const parents = opts.firstParent ? c.parents.slice(0, 1) : c.parents;
    if (!parents.length) return mine.size > 0;
    for (const p of parents) if (same(mine, await scoped((await ctx.meta.readCommit(p)).tree))) return false;
    return true;
  };

  const out: HistoryEntry[] = [];
  const cap = opts.topo ? Infinity : (opts.limit ?? Infinity);
  for await (const e of walkCommits(include, ctx.meta, { firstParent: !!opts.firstParent })) {
    if (excluded.has(e.id)) continue;
    if (scope && !(await changesPaths(e.commit))) continue;
    out.push({ id: e.id, commit: e.commit });
    if (out.length >= cap) break;
  }
  const sorted = opts.topo ? topoOrder(out, !!opts.firstParent) : out;
  return opts.limit !== undefined ? sorted.slice(0, opts.limit) : sorted;
}

/**
 * Children before parents; after a commit, its last parent's line continues
 * (git's --topo-order: lines of history are not intermixed). Ties keep the
 * input (date) order.
 */
export function topoOrder<T extends HistoryEntry>(entries: readonly T[], firstParent = false): T[] {
  const byId = new Map(entries.map((e) => [e.id, e]));
  const parentsOf = (e: T) =>
    (firstParent ? e.commit.parents.slice(0, 1) : e.commit.parents).filter((p) => byId.has(p));
  const children = new Map<string, number>();
  for (const e of entries) for (const p of parentsOf(e)) children.set(p, (children.get(p) ?? 0) + 1);
  const stack = entries.filter((e) => !children.get(e.id)).reverse();
  const out: T[] = [];
  while (stack.length) {
    const e = stack.pop()!;
    out.push(e);
    for (const p of parentsOf(e)) {
      const n = children.get(p)! - 1;
      children.set(p, n);
      if (n === 0) stack.push(byId.get(p)!);
    }
  }
  return out;
}

export interface GraphRow {
  id: string;
  /** The graph left of the commit's first line, e.g. `| *`. */
  graph: string;
  /** Lines drawn after the commit's first line: a merge fork (`|\`) or lines joining (`|/`). */
  after: string[];
  /** The graph left of the commit's further lines (full format), e.g. `| |`. */
  padding: string;
}

function draw(marks: Array<[number, string]>): string {
  const width = marks.reduce((n, [i]) => Math.max(n, i + 1), 0);
  const a = new Array<string>(width).fill(' ');
  for (const [i, c] of marks) a[i] = c;
  return a.join('').trimEnd();
}

/**
 * The ASCII graph of `log --graph`, as `git log --graph --oneline` roughly
 * draws it: one column per line of history, `*` for the commit, `|\` where a
 * merge forks and `|/` where lines join. Edges go only to commits in
 * `entries` (give them in topological order, see `topoOrder`).
 */
export function logGraph(entries: readonly HistoryEntry[], opts: { firstParent?: boolean } = {}): GraphRow[] {
  const shown = new Set(entries.map((e) => e.id));
  let cols: string[] = [];
  const rows: GraphRow[] = [];
  for (const e of entries) {
    let i = cols.indexOf(e.id);
    if (i < 0) {
      cols.push(e.id);
      i = cols.length - 1;
    }
    const graph = draw(cols.map((_, k) => [2 * k, k === i ? '*' : '|']));
    const parents = (opts.firstParent ? e.commit.parents.slice(0, 1) : e.commit.parents).filter((p) => shown.has(p));
    const after: string[] = [];
    const next = [...cols];
    next.splice(i, 1, ...parents);
    if (parents.length > 1) {
      const marks: Array<[number, string]> = [];
      for (let k = 0; k <= i; k++) marks.push([2 * k, '|']);
      for (let x = 1; x < parents.length; x++) marks.push([2 * i + 2 * x - 1, '\\']);
      for (let k = i + 1; k < cols.length; k++) marks.push([2 * (k + parents.length - 1) - 1, '\\']);
      after.push(draw(marks));
    } else if (parents.length === 0 && i < cols.length - 1) {
      const marks: Array<[number, string]> = [];
      for (let k = 0; k < cols.length; k++) if (k !== i) marks.push(k < i ? [2 * k, '|'] : [2 * k - 1, '/']);
      after.push(draw(marks));
    }
    // Lines that now wait for the same commit join the leftmost of them.
    const seen = new Set<string>();
    const kept: string[] = [];
    const marks: Array<[number, string]> = [];
    let shifted = false;
    next.forEach((id, k) => {
      if (seen.has(id)) {
        shifted = true;
        marks.push([2 * k - 1, '/']);
        return;
      }
      seen.add(id);
      kept.push(id);
      marks.push(shifted ? [2 * k - 1, '/'] : [2 * k, '|']);
    });
    if (kept.length !== next.length) after.push(draw(marks));
    cols = kept;
    rows.push({ id: e.id, graph, after, padding: draw(cols.map((_, k) => [2 * k, '|'])) });
  }
  return rows;
}

/** History from `rev` (or HEAD), or as `logCommits` takes it: ranges, paths, topological order. */
export function log(ctx: HistoryContext, opts: { rev?: string } & LogOptions = {}): Promise<HistoryEntry[]> {
  return logCommits(ctx, { ...opts, revs: opts.revs ?? (opts.rev ? [opts.rev] : undefined) });
}

/** The best common ancestors of two revisions. */
export async function mergeBaseOf(ctx: HistoryContext, a: string, b: string): Promise<string[]> {
  return mergeBase(await resolve(ctx, a), await resolve(ctx, b), ctx.meta);
}

/**
 * A metric recorded on a commit: `metadata.metrics[name]` (CheckpointManager,
 * ExperimentTracker, `coral commit --metric`), else `metadata[name]`; undefined when absent.
 */
export function commitMetric(c: Commit, name: string): unknown {
  const m = c.metadata.metrics;
  if (m && typeof m === 'object' && !Array.isArray(m) && Object.prototype.hasOwnProperty.call(m, name))
    return (m as Record<string, unknown>)[name];
  return Object.prototype.hasOwnProperty.call(c.metadata, name) ? c.metadata[name] : undefined;
}

/** What `coral log` prints under a commit besides its message: lossy files it introduced, and metrics. */
export interface CommitNotes {
  /** Files of the commit stored lossy whose version differs from the first parent's. */
  lossy: Array<{ path: string } & LossyMark>;
  /** The requested metrics (undefined when the commit has none of that name). */
  metrics: Record<string, unknown>;
}

/**
 * The notes of one log entry (`coral log --metric loss`).
 *
 * @example
 * const n = await commitNotes(repo, entry, { metrics: ['loss'] });
 * n.metrics.loss; n.lossy[0]?.maxAbsError;
 */
export async function commitNotes(
  ctx: HistoryContext,
  e: HistoryEntry,
  opts: { metrics?: string[] } = {},
): Promise<CommitNotes> {
  const metrics: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  for (const m of opts.metrics ?? []) metrics[m] = commitMetric(e.commit, m);
  const tree = await readTree(ctx, e.commit.tree);
  const lossyPaths = Object.keys(tree.files).filter((p) => tree.files[p].lossy);
  const lossy: CommitNotes['lossy'] = [];
  if (lossyPaths.length) {
    const parent = e.commit.parents[0]
      ? await readTree(ctx, (await ctx.meta.readCommit(e.commit.parents[0])).tree)
      : null;
    for (const p of lossyPaths) {
      const before = parent && Object.prototype.hasOwnProperty.call(parent.files, p) ? parent.files[p] : undefined;
      if (before?.sha256 !== tree.files[p].sha256) lossy.push({ path: p, ...tree.files[p].lossy! });
    }
  }
  return { lossy, metrics };
}
