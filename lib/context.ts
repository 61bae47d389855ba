/**
 * The repository context: the narrow set of parts every command takes, in
 * place of the `Repository` class. A command is a function `(ctx, options)`
 * in lib/commands/ that returns data; `Repository` is a facade whose methods
 * call them with itself as the context (it satisfies `RepoContext`).
 *
 * Nothing below lib/commands imports `Repository`; the free functions here
 * (revisions, trees, the writer session, signatures, paths) are the shared
 * vocabulary of the commands.
 *
 * @example
 * const ctx = await openContext('/data/run');
 * const tree = await treeOf(ctx, 'HEAD');
 * await withWriter(ctx, 'add', async (w) => { … });
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { NotARepositoryError } from './errors';
import { CORAL_DIR, REPO_FORMAT_VERSION, RepoLayout } from './layout';
import { fileTable, signatureNow, type Commit, type Signature, type Tree } from './models';
import { MetaStore } from './odb/meta-store';
import { ObjectReader, ObjectWriter } from './odb/objects';
import { WriterSession } from './odb/session';
import { Config } from './refs/config';
import { RefStore } from './refs/refs';
import { resolveRevision } from './refs/revparse';
import { promisorRemote } from './remote/config';
import { openLocalStore } from './store';
import { sweepStaleTemps } from './worktree/files';
import { treePath, treePathspec } from './worktree/pathspec';
import type { ObjectStore } from './store/object-store';

/** What every command needs of a repository. */
export interface RepoContext {
  /** Absolute path of the working tree (the directory holding `.coral/`). */
  readonly worktree: string;
  readonly layout: RepoLayout;
  /** Commits, trees and tags. */
  readonly meta: MetaStore;
  readonly refs: RefStore;
  /** Tensor objects: local HDF5 packs by default; any ObjectStore (memory, S3…). */
  readonly store: ObjectStore;
  readonly reader: ObjectReader;
  readonly config: Config;
}

/** Written by init; `coral config` edits it. Keys read with dotted paths (core.maxChainDepth). */
export const DEFAULT_CONFIG = {
  core: {
    formatVersion: REPO_FORMAT_VERSION,
    compressionLevel: 3,
    maxChainDepth: 8,
    deltaAgainstParent: true,
    baseCacheBytes: 64 * 1024 * 1024,
  },
};

/** Opens the object store of a repository; the default is its local packs. */
export type StoreFactory = (coralDir: string) => Promise<ObjectStore>;

/** How a repository is opened: which object store backs it. */
export interface OpenOptions {
  /** An open store, or a factory called with the `.coral` directory (default: local HDF5 packs). */
  store?: ObjectStore | StoreFactory;
}

/** The worktree root at or above `dir` (searching upward like git). */
export function findWorktree(dir: string): string {
  let cur = path.resolve(dir);
  for (;;) {
    if (fs.existsSync(path.join(cur, CORAL_DIR, 'HEAD'))) return cur;
    const up = path.dirname(cur);
    if (up === cur)
      throw new NotARepositoryError(
        `not a coral repository (or any parent up to /): ${path.resolve(dir)}; run \`coral init\``,
      );
    cur = up;
  }
}

/** Builds the context of the repository whose worktree is `worktree` (no upward search). */
export async function contextAt(worktree: string, opts: OpenOptions = {}): Promise<RepoContext> {
  const layout = new RepoLayout(worktree);
  const config = await Config.load(layout.coral);
  const s = opts.store;
  const opened =
    s === undefined ? await openLocalStore(layout.coral) : typeof s === 'function' ? await s(layout.coral) : s;
  // A partial clone (`clone --filter`): reads of objects it left out fetch them from the promisor remote
  // (loaded only then: it brings the transports).
  const promisor = promisorRemote(config);
  const store = promisor ? new (await import('./remote/promisor')).PromisorStore(opened, promisor) : opened;
  return {
    worktree,
    layout,
    meta: new MetaStore(layout.meta, layout.tmp),
    refs: new RefStore(layout.coral),
    store,
    reader: new ObjectReader(store, config.getNumber('core.baseCacheBytes') ?? DEFAULT_CONFIG.core.baseCacheBytes),
    config,
  };
}

/**
 * Opens the context of the repository containing `dir` (searching upward like
 * git), clearing the temp files of killed checkouts and merges first.
 */
export async function openContext(dir = process.cwd(), opts: OpenOptions = {}): Promise<RepoContext> {
  const worktree = findWorktree(dir);
  sweepStaleTemps(new RepoLayout(worktree));
  return contextAt(worktree, opts);
}

// ---- revisions and trees -----------------------------------------------------------------------

/** Commit id of HEAD, or null on an unborn branch. */
export function headCommit(ctx: Pick<RepoContext, 'refs'>): Promise<string | null> {
  return ctx.refs.resolveHead();
}

/** Current branch name (without refs/heads/), or null when HEAD is detached. */
export async function currentBranch(ctx: Pick<RepoContext, 'refs'>): Promise<string | null> {
  const h = await ctx.refs.readHead();
  return h.kind === 'symbolic' ? h.target.replace(/^refs\/heads\//, '') : null;
}

/** The commit id a revision expression names (`HEAD~2`, `v1^{}`, a branch, an id prefix…). */
export function resolve(ctx: Pick<RepoContext, 'refs' | 'meta'>, rev: string): Promise<string> {
  return resolveRevision(rev, ctx.refs, ctx.meta);
}

export function readCommit(ctx: Pick<RepoContext, 'meta'>, id: string): Promise<Commit> {
  return ctx.meta.readCommit(id);
}

export function readTree(ctx: Pick<RepoContext, 'meta'>, id: string): Promise<Tree> {
  return ctx.meta.readTree(id);
}

/** The tree of a revision (the empty tree for null: an unborn branch). */
export async function treeOf(ctx: Pick<RepoContext, 'refs' | 'meta'>, rev: string | null): Promise<Tree> {
  return commitTree(ctx, rev === null ? null : await resolve(ctx, rev));
}

/** The tree of commit `id` (the empty tree for null: an unborn branch). */
export async function commitTree(ctx: Pick<RepoContext, 'meta'>, id: string | null): Promise<Tree> {
  if (id === null) return { files: fileTable() };
  return readTree(ctx, (await readCommit(ctx, id)).tree);
}

/** HEAD's tree, or the empty tree on an unborn branch (HEAD is resolved once). */
export async function headTree(ctx: Pick<RepoContext, 'refs' | 'meta'>): Promise<Tree> {
  return commitTree(ctx, await headCommit(ctx));
}

// ---- writing -----------------------------------------------------------------------------------

/**
 * Runs `fn` inside a writer session (lib/odb/session.ts: gc waits for it) with
 * an object writer, flushed on success and aborted on failure.
 */
export async function withWriter<T>(
  ctx: Pick<RepoContext, 'layout' | 'store' | 'reader' | 'config'>,
  what: string,
  fn: (w: ObjectWriter) => Promise<T>,
): Promise<T> {
  const session = await WriterSession.begin(ctx.layout, what);
  // The store's view was loaded at open, before this session excluded gc: reload it
  // under the session so no dedup or delta base trusts an object gc has removed.
  await ctx.store.refresh();
  const writer = new ObjectWriter(ctx.store, ctx.reader, {
    level: ctx.config.getNumber('core.compressionLevel') ?? DEFAULT_CONFIG.core.compressionLevel,
    maxChainDepth: ctx.config.getNumber('core.maxChainDepth') ?? DEFAULT_CONFIG.core.maxChainDepth,
  });
  try {
    const out = await fn(writer);
    await writer.flush();
    return out;
  } catch (e) {
    await writer.abort();
    throw e;
  } finally {
    session.end();
  }
}

/** Author/committer: `part`, else CORAL_AUTHOR_NAME/EMAIL, else user.name/email, else the OS user. */
export function signature(ctx: Pick<RepoContext, 'config'>, part?: Partial<Signature>): Signature {
  const name = part?.name ?? process.env.CORAL_AUTHOR_NAME ?? ctx.config.getString('user.name') ?? '';
  const email = part?.email ?? process.env.CORAL_AUTHOR_EMAIL ?? ctx.config.getString('user.email') ?? '';
  const user = os.userInfo().username;
  const base = signatureNow(name || user, email || `${user}@${os.hostname()}`);
  return {
    ...base,
    ...(part?.timestamp !== undefined ? { timestamp: part.timestamp } : {}),
    ...(part?.tzOffset !== undefined ? { tzOffset: part.tzOffset } : {}),
  };
}

// ---- paths -------------------------------------------------------------------------------------

/** Worktree-relative posix path of a user-supplied path; rejects paths outside the worktree or in `.coral`. */
export function relPath(ctx: Pick<RepoContext, 'worktree'>, p: string): string {
  return treePath(ctx.worktree, p);
}

/** Like relPath, but the repository root itself is accepted as '' (every path: `checkout <rev> -- .`). */
export function pathspec(ctx: Pick<RepoContext, 'worktree'>, p: string): string {
  return treePathspec(ctx.worktree, p);
}

/** Absolute path of a worktree-relative posix path. */
export function absPath(ctx: Pick<RepoContext, 'worktree'>, rel: string): string {
  return path.join(ctx.worktree, ...rel.split('/'));
}
