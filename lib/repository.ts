/**
 * A coral repository: a working tree of checkpoint files plus `.coral/`.
 *
 * A thin facade: each method delegates to one command in lib/commands/
 * (`(ctx, options) => data`), passing itself as the repository context.
 * The commands that talk to other places (remotes, the hub, publishing) are
 * loaded on first use, so opening a repository for `status` or `log` does not
 * load the transports and their clients.
 *
 * @example
 * const repo = await Repository.init('/data/ckpts');
 * await repo.add(['model.safetensors']);
 * const id = await repo.commit({ message: 'base model' });
 * for (const e of await repo.log()) console.log(e.id, e.commit.message);
 */
import * as fs from 'node:fs';
import type { AddOptions, AddReport } from './commands/add';
import type { CheckoutOptions, CheckoutReport } from './commands/checkout';
import type { CommitOptions } from './commands/commit';
import type { FsckReport } from './commands/fsck';
import type { GcOptions, GcReport } from './commands/gc';
import type { LogOptions } from './commands/log';
import type * as merging from './commands/merge';
import type { ResetMode, ResetReport } from './commands/reset';
import type { RemoveOptions } from './commands/rm';
import type { StatsReport } from './commands/stats';
import type { HubGetOptions, HubGetReport } from './commands/hub';
import type { PublishOptions, PublishRecord, PublishReport } from './commands/publish';
import type { PublishToOptions, PublishToReport } from './commands/publish-remote';
import type { StatusReport } from './commands/status';
import type { TagInfo } from './commands/tag';
import type { CloneOptions, CloneReport } from './commands/clone';
import type { FetchOptions, FetchReport } from './commands/fetch';
import type { PullOptions, PullReport } from './commands/pull';
import type { PushOptions, PushReport } from './commands/push';
import type { RemoteConfig } from './commands/remote';
import type { SyncOptions, SyncReport } from './commands/sync';
import {
  absPath,
  currentBranch,
  headCommit,
  openContext,
  pathspec,
  readCommit,
  readTree,
  relPath,
  resolve,
  treeOf,
  withWriter,
  type OpenOptions,
  type RepoContext,
} from './context';
import type { RebuildReport, SimilarOptions, SimilarReport, SimilarTarget } from './ingest/similarity';
import type { RepoLayout } from './layout';
import { markResolved, readMergeState } from './merge/state';
import type { Commit, Tree } from './models';
import type { MetaStore } from './odb/meta-store';
import type { ObjectReader, ObjectWriter } from './odb/objects';
import type { Config } from './refs/config';
import type { RefStore } from './refs/refs';
import type { ObjectStore } from './store/object-store';
import type { FileChange } from './diff/tensor-diff';
import { ignoreRules, type IgnoreRules } from './worktree/ignore';

export type { AddOptions, AddReport } from './commands/add';
export type { CommitOptions } from './commands/commit';
export type { FileStatus, StatusReport } from './commands/status';

export interface LogEntry {
  id: string;
  commit: Commit;
}

export class Repository implements RepoContext {
  readonly worktree: string;
  readonly layout: RepoLayout;
  readonly meta: MetaStore;
  readonly refs: RefStore;
  readonly store: ObjectStore;
  readonly reader: ObjectReader;
  readonly config: Config;

  private constructor(ctx: RepoContext) {
    ({ worktree: this.worktree, layout: this.layout, meta: this.meta, refs: this.refs } = ctx);
    ({ store: this.store, reader: this.reader, config: this.config } = ctx);
  }

  /** Creates `.coral/` in `dir` (created if missing) with an unborn `main` branch. */
  static async init(dir: string, opts: { branch?: string } & OpenOptions = {}): Promise<Repository> {
    return Repository.open(await (await import('./commands/init')).init(dir, opts), opts);
  }

  /**
   * Opens the repository containing `dir` (searching upward like git). Its
   * objects live in the local packs unless `opts.store` names another ObjectStore.
   */
  static async open(dir = process.cwd(), opts: OpenOptions = {}): Promise<Repository> {
    return new Repository(await openContext(dir, opts));
  }

  /**
   * Clones the repository at `url` (a path, file:// or s3:// URL) into `dir` and opens it
   * (lib/commands/clone.ts); `report` says what was fetched and checked out.
   */
  static async clone(
    url: string,
    dir?: string,
    opts: CloneOptions = {},
  ): Promise<{ repository: Repository; report: CloneReport }> {
    const report = await (await import('./commands/clone')).clone(url, dir, opts);
    return { repository: await Repository.open(report.worktree), report };
  }

  async close(): Promise<void> {
    await this.store.close();
  }

  static isCommitId(s: string): boolean {
    return s.length === 64 && /^[0-9a-f]+$/.test(s);
  }

  // ---- paths and revisions (lib/context.ts) --------------------------------------------------

  /** Worktree-relative posix path of a user-supplied path; rejects paths outside the worktree. */
  relPath(p: string): string {
    return relPath(this, p);
  }

  /** Like relPath, but the repository root itself is accepted as '' (every path: `checkout <rev> -- .`). */
  pathspec(p: string): string {
    return pathspec(this, p);
  }

  absPath(rel: string): string {
    return absPath(this, rel);
  }

  /** Commit id of HEAD, or null on an unborn branch. */
  headCommit(): Promise<string | null> {
    return headCommit(this);
  }

  /** Current branch name (without refs/heads/), or null when HEAD is detached. */
  currentBranch(): Promise<string | null> {
    return currentBranch(this);
  }

  resolve(rev: string): Promise<string> {
    return resolve(this, rev);
  }

  readCommit(id: string): Promise<Commit> {
    return readCommit(this, id);
  }

  readTree(id: string): Promise<Tree> {
    return readTree(this, id);
  }

  /** The tree of a revision (empty tree for null = unborn). */
  treeOf(rev: string | null): Promise<Tree> {
    return treeOf(this, rev);
  }

  /** Runs `fn` inside a writer session (lib/odb/session.ts) with an object writer. */
  withWriter<T>(what: string, fn: (w: ObjectWriter) => Promise<T>): Promise<T> {
    return withWriter(this, what, fn);
  }

  // ---- staging and committing (lib/commands/add, commit, reset, rm) --------------------------

  /** Paths staged during a merge are its resolved conflicts (lib/commands/merge.ts). */
  private readonly markResolved = (paths: string[]): Promise<void> => markResolved(this, paths);

  /** Stages files (or every file under the given directories); see lib/commands/add.ts. */
  async add(paths: string[], opts: AddOptions = {}): Promise<AddReport> {
    return (await import('./commands/add')).add(this, paths, { ...opts, onStaged: this.markResolved });
  }

  /** Stages every tracked file whose worktree copy was modified or deleted (`commit -a`, `add -u`). */
  async stageTracked(): Promise<string[]> {
    return (await import('./commands/add')).stageTracked(this, { onStaged: this.markResolved });
  }

  /**
   * Records the index as a new commit (lib/commands/commit.ts). During a merge
   * (--no-commit, or conflicts fixed and added) the commit concludes it with
   * both parents, as git does; the message defaults to the merge's.
   */
  async commit(opts: CommitOptions): Promise<string> {
    if (opts?.all) await this.stageTracked();
    if (opts && !opts.extraParents?.length && fs.existsSync(this.layout.mergeState))
      return (await import('./commands/merge')).mergeContinue(this, {
        message: typeof opts.message === 'string' && opts.message.trim() ? opts.message : undefined,
        author: opts.author,
        metadata: opts.metadata,
      });
    return (await import('./commands/commit')).commit(this, { ...opts, all: false });
  }

  /** Unstages paths: the index entries under them take HEAD's version, or `rev`'s (lib/commands/reset.ts). */
  async reset(paths: string[], opts: { rev?: string } = {}): Promise<string[]> {
    return (await import('./commands/reset')).resetPaths(this, paths, opts.rev);
  }

  /** Sets the whole index to HEAD's tree (`coral reset`); with `ifDamaged`, only a damaged one (null: it was readable). */
  async rebuildIndex(opts: { ifDamaged?: boolean } = {}): Promise<number | null> {
    return (await import('./commands/reset')).rebuildIndex(this, opts);
  }

  /** `reset [--soft|--mixed|--hard] [<rev>]`: moves HEAD's branch, and the index (mixed) and worktree (hard). */
  async resetTo(opts: { mode?: ResetMode; rev?: string } = {}): Promise<ResetReport> {
    return (await import('./commands/reset')).resetTo(this, opts);
  }

  /** Removes files from the index (and, unless `cached`, from the worktree); refuses to lose edits unless `force`. */
  async rm(paths: string[], opts: RemoveOptions = {}): Promise<string[]> {
    return (await import('./commands/rm')).removePaths(this, paths, opts);
  }

  // ---- status (lib/commands/status.ts) --------------------------------------------------------

  /** Files and symlinks under `dir`, worktree-relative, skipping .coral, temp files and ignored paths. */
  async listWorktree(dir = this.worktree, opts: { ignored?: boolean } = {}): Promise<string[]> {
    return (await import('./commands/status')).listWorktree(this, dir, opts);
  }

  /** The ignore rules of the worktree as it is now (`core.useGitignore` decides on .gitignore files). */
  ignoreRules(): IgnoreRules {
    return ignoreRules(this);
  }

  async status(): Promise<StatusReport> {
    return (await import('./commands/status')).status(this);
  }

  // ---- history and merge (lib/commands/log.ts, lib/commands/merge.ts) -----------------------------

  /** History from `rev` (or HEAD), or as `logCommits` takes it: ranges, paths, topological order. */
  async log(opts: { rev?: string } & LogOptions = {}): Promise<LogEntry[]> {
    return (await import('./commands/log')).log(this, opts);
  }

  async mergeBase(a: string, b: string): Promise<string[]> {
    return (await import('./commands/log')).mergeBaseOf(this, a, b);
  }

  /** Three-way, tensor-aware merge of `other` into HEAD (lib/commands/merge.ts, docs/merge.md). */
  async merge(other: string, opts: merging.MergeOptions = {}): Promise<merging.MergeReport> {
    return (await import('./commands/merge')).merge(this, other, opts);
  }

  /** Commits a merge in progress (after --no-commit, conflicts, or a crash). */
  async mergeContinue(opts: { message?: string } = {}): Promise<string> {
    return (await import('./commands/merge')).mergeContinue(this, opts);
  }

  /** The merge in progress (.coral/MERGE_STATE), or null. */
  mergeState(): merging.MergeStateFile | null {
    return readMergeState(this);
  }

  /** Abandons a merge in progress; worktree and index return to ORIG_HEAD. */
  async mergeAbort(): Promise<{ orig: string; written: string[]; removed: string[] }> {
    return (await import('./commands/merge')).mergeAbort(this);
  }

  /** Try-and-vet: one candidate checkpoint set per strategy under `out/<strategy>/`; refs and index untouched. */
  async mergeTry(other: string, strategies: merging.MergeTryStrategies, out: string, opts: merging.MergeParams = {}) {
    return (await import('./commands/merge')).mergeTry(this, other, strategies, out, opts);
  }

  // ---- branches and tags (lib/commands/branch.ts, tag.ts) ------------------------------------

  async branches(): Promise<Array<{ name: string; id: string; current: boolean }>> {
    return (await import('./commands/branch')).branches(this);
  }

  async createBranch(name: string, startRev = 'HEAD', opts: { force?: boolean } = {}): Promise<string> {
    return (await import('./commands/branch')).createBranch(this, name, startRev, opts);
  }

  async deleteBranch(name: string, opts: { force?: boolean } = {}): Promise<void> {
    return (await import('./commands/branch')).deleteBranch(this, name, opts);
  }

  async tags(): Promise<TagInfo[]> {
    return (await import('./commands/tag')).tags(this);
  }

  /** Lightweight tag, or annotated when a message (and optional metrics) is given. */
  async createTag(
    name: string,
    rev = 'HEAD',
    opts: { message?: string; metrics?: Record<string, unknown>; force?: boolean } = {},
  ): Promise<string> {
    return (await import('./commands/tag')).createTag(this, name, rev, opts);
  }

  async deleteTag(name: string): Promise<void> {
    return (await import('./commands/tag')).deleteTag(this, name);
  }

  // ---- checkout and inspection (lib/commands/checkout.ts, diff.ts, show.ts) ------------------

  /**
   * Switches HEAD to a branch (or detaches at a revision) and rewrites the
   * worktree byte-for-byte. Refuses to overwrite uncommitted changes unless
   * `force`. With `paths`, only restores those files from `rev` (HEAD stays).
   */
  async checkout(target: string, opts: CheckoutOptions = {}): Promise<CheckoutReport> {
    return (await import('./commands/checkout')).checkout(this, target, opts);
  }

  /** `checkout -- <paths>`: worktree files take their staged version back (unstaged edits are discarded). */
  async restore(paths: string[]): Promise<CheckoutReport> {
    return (await import('./commands/checkout')).restoreFromIndex(this, paths);
  }

  /** Writes a committed file to an arbitrary destination (e.g. `coral show rev:path > f`). */
  async exportFile(rev: string, rel: string, dest: string): Promise<void> {
    return (await import('./commands/show')).exportFile(this, rev, rel, dest);
  }

  /** Tensor-aware diff between two revisions (`b` omitted: the index); metrics unless `metrics: false`. */
  async diff(a: string, b?: string, opts: { metrics?: boolean; paths?: string[] } = {}): Promise<FileChange[]> {
    return (await import('./commands/diff')).diff(this, a, b, opts);
  }

  /** One tensor of a committed file, decoded and verified. */
  async readTensor(rev: string, file: string, name: string) {
    return (await import('./commands/show')).readTensor(this, rev, file, name);
  }

  // ---- remotes (lib/commands/remote.ts, push.ts, fetch.ts, pull.ts, sync.ts; docs/remotes.md) ------

  /** The configured remotes. */
  async remotes(): Promise<RemoteConfig[]> {
    return (await import('./commands/remote')).remotes(this);
  }

  /** Adds remote `name` at `url`; `endpoint` for an S3-compatible server. */
  async remoteAdd(name: string, url: string, opts: { endpoint?: string } = {}): Promise<RemoteConfig> {
    return (await import('./commands/remote')).remoteAdd(this, name, url, opts);
  }

  /** Removes a remote, its remote-tracking refs and the upstream settings that named it. */
  async remoteRemove(name: string): Promise<void> {
    return (await import('./commands/remote')).remoteRemove(this, name);
  }

  /** Sends branches (default: the current one) and tags to a remote (name or URL; default the upstream's, else origin). */
  async push(remote?: string, opts: PushOptions = {}): Promise<PushReport> {
    return (await import('./commands/push')).push(this, remote, opts);
  }

  /** Fetches a remote's branches (as refs/remotes/<remote>/*) and tags; `allObjects` completes a partial clone. */
  async fetch(remote?: string, opts: FetchOptions = {}): Promise<FetchReport> {
    return (await import('./commands/fetch')).fetch(this, remote, opts);
  }

  /** Fetch, then merge the remote branch into the current one with the merge options. */
  async pull(remote?: string, branch?: string, opts: PullOptions = {}): Promise<PullReport> {
    return (await import('./commands/pull')).pull(this, remote, branch, opts);
  }

  /** Fetch, merge every tracked branch that diverged (stopping at a conflict), push what is ahead. */
  async sync(remote?: string, opts: SyncOptions = {}): Promise<SyncReport> {
    return (await import('./commands/sync')).sync(this, remote, opts);
  }

  // ---- maintenance (lib/commands/gc.ts, fsck.ts, stats.ts, similar.ts) ------------------------

  async gc(opts?: GcOptions): Promise<GcReport> {
    return (await import('./commands/gc')).gc(this, opts);
  }

  async fsck(opts?: { full?: boolean }): Promise<FsckReport> {
    return (await import('./commands/fsck')).fsck(this, opts);
  }

  async stats(): Promise<StatsReport> {
    return (await import('./commands/stats')).stats(this);
  }

  /** The stored checkpoints closest to a worktree file or a committed `rev:path` (lib/ingest/similarity.ts). */
  /** Downloads a model from a Hugging Face-compatible hub, fetching only tensors the store lacks (lib/commands/hub.ts). */
  async hubGet(repo: string, opts: HubGetOptions = {}): Promise<HubGetReport> {
    return (await import('./commands/hub')).hubGet({ reader: this.reader, worktree: this.worktree }, repo, opts);
  }

  /** Writes a commit out as a Hugging Face or MLflow model folder (lib/commands/publish.ts). */
  async publish(rev: string, opts: PublishOptions): Promise<PublishReport> {
    return (await import('./commands/publish')).publish(this, rev, opts);
  }

  /** Publishes a commit into a remote repository (a `coral serve` registry) under a tag (lib/commands/publish-remote.ts). */
  async publishTo(rev: string, opts: PublishToOptions): Promise<PublishToReport> {
    return (await import('./commands/publish-remote')).publishTo(this, rev, opts);
  }

  /** What was published where, from `.coral/publish.log`. */
  async publishLog(): Promise<PublishRecord[]> {
    return (await import('./commands/publish')).publishLog(this);
  }

  async similar(target: SimilarTarget, opts?: SimilarOptions): Promise<SimilarReport> {
    return (await import('./commands/similar')).similar(this, target, opts);
  }

  /** Rebuilds `.coral/simindex/` from the stored objects. */
  async rebuildSimilarityIndex(): Promise<RebuildReport> {
    return (await import('./commands/similar')).rebuildSimilarityIndex(this);
  }
}
