/**
 * A coral repository: a working tree of checkpoint files plus `.coral/`.
 *
 * Policy lives here (what to store, when refs move); bytes are handled by the
 * store, codecs and native kernels below.
 *
 * @example
 * const repo = await Repository.init('/data/ckpts');
 * await repo.add(['model.safetensors']);
 * const id = await repo.commit({ message: 'base model' });
 * for (const e of await repo.log()) console.log(e.id, e.commit.message);
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import {
  AlreadyExistsError, CorruptIndexError, InvalidArgumentError, NothingToCommitError,
  RefNotFoundError, invalidParameter,
} from './errors';
import { SKELETON_NAME, ingestFile, segmentNames, type FindBase, type IngestReport } from './ingest/ingest';
import { openIngestPolicy } from './ingest/bases';
import {
  rebuildSimilarityIndex, similarCheckpoints, similaritySettings,
  type RebuildReport, type SimilarOptions, type SimilarReport, type SimilarTarget,
} from './ingest/similarity';
import {
  checkShortRefName, checkTreePath, isValidRefName, encodeCommit, fileTable, encodeTag, encodeTree,
  type Commit, type FileEntry, type Signature, type TagObject, type Tree,
} from './models';
import { MetaStore } from './odb/meta-store';
import {
  absPath, contextAt, currentBranch, DEFAULT_CONFIG, findWorktree, headCommit, pathspec, readCommit, readTree, relPath,
  resolve, signature, treeOf, withWriter, type OpenOptions, type RepoContext,
} from './context';
import { Config } from './refs/config';
import { RefStore } from './refs/refs';
import { mergeBase } from './refs/ancestry';
import type { ObjectStore } from './store/object-store';
import { crashPoint } from './util/crash';
import { writeFileAtomic } from './util/fsutil';
import { CORAL_DIR, RepoLayout } from './layout';
import { diffSides, type FileChange } from './diff/tensor-diff';
import { logCommits, type LogOptions } from './commands/log';
import { fsck, gc, stats, type FsckReport, type GcOptions, type GcReport, type StatsReport } from './commands/maintenance';
import { materializeFile, readFileTensor } from './worktree/materialize';
import * as merging from './repo/merge';
import { ObjectReader, ObjectWriter } from './odb/objects';
import { readIndex, rebuildIndexFromHead, sameStat, statOf, updateIndex, type StagingIndex } from './worktree/staging';
import {
  checkNotBeyondSymlink, checkNotInCoral, checkWritable, lstatWorktree, materializeWorktreeFile,
  sweepStaleTemps,
} from './worktree/files';
import { IgnoreRules, walkWorktree } from './worktree/ignore';
import { ingestSymlink, isSymlinkEntry } from './worktree/symlink';
import { applyTree, inPathspec, worktreeState } from './worktree/apply-tree';
import { removePaths, type RemoveOptions } from './commands/rm';
import { resetPaths, resetTo, type ResetMode, type ResetReport } from './commands/reset';

export interface CommitOptions {
  message: string;
  author?: Partial<Signature>;
  metadata?: Record<string, unknown>;
  /** Allow a commit whose tree equals its parent's. */
  allowEmpty?: boolean;
  /** Extra parents after HEAD (merge commits). */
  extraParents?: string[];
  /** Stage modifications and deletions of tracked files first (`commit -a`). */
  all?: boolean;
}

export interface LogEntry {
  id: string;
  commit: Commit;
}

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
}

export interface AddReport {
  /** One report per file stored; `plainFile` says why a checkpoint-looking file was stored unparsed. */
  files: IngestReport[];
}

export interface AddOptions {
  onFile?: (rel: string, report: IngestReport) => void;
  /** Refuse (throw the parser's error) instead of storing an unparsable checkpoint as a plain file. */
  strict?: boolean;
  /** Add ignored paths too (`coral add -f`). */
  force?: boolean;
}

function isHex(s: string, n: number): boolean {
  return s.length === n && /^[0-9a-f]+$/.test(s);
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
    const worktree = path.resolve(dir);
    const layout = new RepoLayout(worktree);
    if (fs.existsSync(layout.coral)) throw new AlreadyExistsError(`${layout.coral} already exists`, { path: layout.coral });
    const branch = checkShortRefName(opts.branch ?? 'main');
    await fsp.mkdir(worktree, { recursive: true });
    // Build in a temp dir and rename, so a crash never leaves a half-initialised repository.
    const staging = path.join(worktree, `${CORAL_DIR}.init-${process.pid}`);
    await fsp.rm(staging, { recursive: true, force: true });
    for (const d of ['refs/heads', 'refs/tags', 'objects/packs', 'objects/meta', 'tmp', 'sessions', 'logs'])
      await fsp.mkdir(path.join(staging, d), { recursive: true });
    await writeFileAtomic(path.join(staging, 'HEAD'), `ref: refs/heads/${branch}\n`);
    await writeFileAtomic(path.join(staging, 'config'), JSON.stringify(DEFAULT_CONFIG, null, 2) + '\n');
    await fsp.rename(staging, layout.coral);
    return Repository.open(worktree, opts);
  }

  /**
   * Opens the repository containing `dir` (searching upward like git). Its
   * objects live in the local packs unless `opts.store` names another ObjectStore.
   */
  static async open(dir = process.cwd(), opts: OpenOptions = {}): Promise<Repository> {
    const worktree = findWorktree(dir);
    sweepStaleTemps(new RepoLayout(worktree)); // temp files of killed checkouts and merges
    return new Repository(await contextAt(worktree, opts));
  }

  async close(): Promise<void> {
    await this.store.close();
  }

  // ---- paths ---------------------------------------------------------------------------------

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

  // ---- refs ----------------------------------------------------------------------------------

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

  // ---- writing -------------------------------------------------------------------------------

  /** Runs `fn` inside a writer session (lib/odb/session.ts) with an object writer. */
  withWriter<T>(what: string, fn: (w: ObjectWriter) => Promise<T>): Promise<T> {
    return withWriter(this, what, fn);
  }

  /** Base proposals for delta encoding: the same-named tensor of the file's parent version. */
  private async parentBases(): Promise<FindBase | null> {
    if (this.config.getBool('core.deltaAgainstParent') === false) return null;
    const head = await this.headCommit();
    if (!head) return null;
    const tree = await this.treeOf(head);
    const perFile = new Map<string, Map<string, { object: string; dtype: string; shape: number[] }>>();
    // Skeletons (headers, pickles) of one architecture are near-identical across files: any
    // parent file whose skeleton has the same length is a good base, the same path first.
    const skeletonLength = (e: FileEntry) => e.size - e.segments.reduce((n, s) => n + s.length, 0);
    return async (q) => {
      if (q.name === SKELETON_NAME) {
        const same = tree.files[q.path];
        const hit = same && skeletonLength(same) === q.shape[0] ? same : Object.values(tree.files).find((e) => skeletonLength(e) === q.shape[0]);
        return hit ? { id: hit.skeleton } : null;
      }
      const entry = tree.files[q.path];
      if (!entry) return null;
      let names = perFile.get(q.path);
      if (!names) perFile.set(q.path, (names = segmentNames(entry)));
      const s = names.get(q.name);
      if (!s || s.dtype !== q.dtype || s.shape.length !== q.shape.length || s.shape.some((d, i) => d !== q.shape[i]))
        return null;
      return { id: s.object };
    };
  }

  /**
   * Stages files (or every file under the given directories). Each file is
   * stored as skeleton + tensor objects; files whose stat matches the index are
   * skipped. Paths that no longer exist are staged as deletions.
   */
  async add(paths: string[], opts: AddOptions = {}): Promise<AddReport> {
    if (!Array.isArray(paths) || paths.length === 0) throw invalidParameter('paths', 'non-empty array of paths', paths);
    const files = new Set<string>();
    const gone = new Set<string>();
    const idx0 = readIndex(this.layout);
    const tracked = new Set(Object.keys(idx0.files));
    const rules = opts.force ? null : this.ignoreRules();
    const ignored: string[] = [];
    for (const p of paths) {
      const abs = path.resolve(p);
      const rel = abs === this.worktree ? '' : this.relPath(abs);
      if (rel) await checkNotBeyondSymlink(this.layout, rel);
      // lstat: a symlink is recorded as a link, never followed (lib/worktree/symlink.ts).
      const st = await fsp.lstat(abs).catch(() => null);
      const under = (f: string) => rel === '' || f === rel || f.startsWith(`${rel}/`);
      if (!st) {
        const gonePaths = [...tracked].filter(under);
        if (!gonePaths.length) throw new InvalidArgumentError(`pathspec '${p}' did not match any files`);
        gonePaths.forEach((f) => gone.add(f));
        continue;
      }
      // Like git: naming an ignored, untracked path is refused unless forced.
      if (rel && rules && !tracked.has(rel) && ![...tracked].some(under) && (await rules.ignores(rel, st.isDirectory()))) {
        ignored.push(rel);
        continue;
      }
      if (st.isDirectory()) {
        for (const f of await walkWorktree(this.worktree, abs, { rules, tracked })) files.add(f);
        for (const f of tracked) if (under(f) && !(await lstatWorktree(this.layout, f))) gone.add(f);
      } else {
        files.add(rel);
      }
    }
    if (ignored.length)
      throw new InvalidArgumentError(
        `the following paths are ignored by a .coralignore or .gitignore file: ${ignored.join(', ')}; use -f (force: true) to add them anyway`,
        { ignored },
      );
    const policy = await openIngestPolicy(this, await this.parentBases());
    const report: AddReport = { files: [] };
    try {
    await this.withWriter('add', async (writer) => {
      const staged = fileTable<{ entry: FileEntry; stat: ReturnType<typeof statOf> }>();
      for (const rel of [...files].sort()) {
        const abs = this.absPath(rel);
        const st = await fsp.lstat(abs);
        const prev = idx0.files[rel];
        if (prev && sameStat(prev.stat, st) && isSymlinkEntry(prev.entry) === st.isSymbolicLink()) continue;
        const { entry, report: r } = st.isSymbolicLink()
          ? await ingestSymlink(writer, abs, rel)
          : await ingestFile(writer, abs, rel, policy.findBase, policy.hooks, { strict: opts.strict });
        staged[rel] = { entry, stat: statOf(st) };
        report.files.push(r);
        opts.onFile?.(rel, r);
      }
      // Objects must be durable before the index names them.
      await writer.flush();
      crashPoint('add:after-pack');
      await updateIndex(this.layout, (idx) => {
        for (const [rel, s] of Object.entries(staged)) idx.files[rel] = s;
        for (const rel of gone) delete idx.files[rel];
      });
    });
    } finally {
      await policy.close();
    }
    await merging.markResolved(this, [...files, ...gone]);
    return report;
  }

  /** Unstages paths: the index entries under them take HEAD's version, or `rev`'s (lib/repo/reset.ts). */
  async reset(paths: string[], opts: { rev?: string } = {}): Promise<string[]> {
    return resetPaths(this, paths, opts.rev);
  }

  /**
   * Sets the whole index to HEAD's tree (`coral reset`), even when the index is
   * damaged; returns the entry count. With `ifDamaged`, only a damaged index is
   * replaced (`fsck --rebuild-index`); null when it was readable.
   */
  async rebuildIndex(opts: { ifDamaged?: boolean } = {}): Promise<number | null> {
    if (opts.ifDamaged) {
      try {
        readIndex(this.layout);
        return null;
      } catch (e) {
        if (!(e instanceof CorruptIndexError)) throw e;
      }
    }
    return rebuildIndexFromHead(this.layout, await this.treeOf((await this.headCommit()) ? 'HEAD' : null));
  }

  /** `reset [--soft|--mixed|--hard] [<rev>]`: moves HEAD's branch, and the index (mixed) and worktree (hard). */
  async resetTo(opts: { mode?: ResetMode; rev?: string } = {}): Promise<ResetReport> {
    return resetTo(this, opts);
  }

  /** Removes files from the index (and, unless `cached`, from the worktree); refuses to lose edits unless `force` (lib/repo/remove.ts). */
  async rm(paths: string[], opts: RemoveOptions = {}): Promise<string[]> {
    return removePaths(this, paths, opts);
  }

  private signature(part?: Partial<Signature>): Signature {
    return signature(this, part);
  }

  /** Tree bytes of the index, stored; returns the tree id. */
  private async writeIndexTree(idx: StagingIndex): Promise<string> {
    const files = fileTable<FileEntry>();
    for (const k of Object.keys(idx.files).sort()) files[k] = idx.files[k].entry;
    return this.meta.put(encodeTree({ files }));
  }

  /**
   * Records the index as a new commit on the current branch (or detached HEAD).
   * The ref moves by compare-and-swap; the index lock is held throughout so
   * concurrent committers serialise and no update is lost.
   */
  async commit(opts: CommitOptions): Promise<string> {
    if (opts?.all) await this.stageTracked();
    // A merge in progress (merge --no-commit, or conflicts fixed and added): this commit concludes
    // it with both parents, as git does; the message defaults to the merge's (lib/repo/merge.ts).
    if (opts && !opts.extraParents?.length && fs.existsSync(this.layout.mergeState))
      return merging.mergeContinue(this, {
        message: typeof opts.message === 'string' && opts.message.trim() ? opts.message : undefined,
        author: opts.author,
        metadata: opts.metadata,
      });
    if (!opts || typeof opts.message !== 'string' || !opts.message.trim())
      throw invalidParameter('message', 'non-empty string', opts?.message);
    return this.withWriter('commit', async () => {
      let result = '';
      await updateIndex(this.layout, async (idx) => {
        const head = await this.refs.readHead();
        const parent = await this.refs.resolveHead();
        const treeId = await this.writeIndexTree(idx);
        if (parent && !opts.allowEmpty && !opts.extraParents?.length) {
          const pc = await this.readCommit(parent);
          if (pc.tree === treeId) throw new NothingToCommitError('nothing to commit (the index matches HEAD); use `coral add` first');
        }
        if (!parent && Object.keys(idx.files).length === 0 && !opts.allowEmpty)
          throw new NothingToCommitError('nothing to commit; use `coral add <file>` first');
        const sig = this.signature(opts.author);
        const commit: Commit = {
          tree: treeId,
          parents: [...(parent ? [parent] : []), ...(opts.extraParents ?? [])],
          author: sig,
          committer: sig,
          message: opts.message.endsWith('\n') ? opts.message : `${opts.message}\n`,
          metadata: opts.metadata ?? {},
        };
        const id = await this.meta.put(encodeCommit(commit));
        crashPoint('commit:before-ref');
        const summary = `commit${commit.parents.length > 1 ? ' (merge)' : parent ? '' : ' (initial)'}: ${opts.message.split('\n')[0]}`;
        if (head.kind === 'symbolic') {
          await this.refs.updateRef(head.target, id, { expectedOld: parent, message: summary, who: sig });
        } else {
          await this.refs.updateRef('HEAD', id, { expectedOld: parent, message: summary, who: sig });
        }
        result = id;
      });
      return result;
    });
  }

  /** Stages every tracked file whose worktree copy was modified or deleted (`commit -a`, `add -u`). */
  async stageTracked(): Promise<string[]> {
    const changed = (await this.status()).files.filter((f) => f.unstaged !== null).map((f) => f.path);
    if (changed.length) await this.add(changed.map((p) => this.absPath(p)));
    return changed;
  }

  // ---- status --------------------------------------------------------------------------------

  /**
   * Files and symlinks under `dir` (absolute), worktree-relative, skipping
   * .coral, coral temp files and ignored paths (.coralignore, .gitignore; see
   * lib/worktree/ignore.ts) unless tracked or `ignored: true`.
   */
  async listWorktree(dir = this.worktree, opts: { ignored?: boolean } = {}): Promise<string[]> {
    const tracked = new Set(Object.keys(readIndex(this.layout).files));
    return walkWorktree(this.worktree, dir, { rules: opts.ignored ? null : this.ignoreRules(), tracked });
  }

  /** The ignore rules of the worktree as it is now (`core.useGitignore` decides on .gitignore files). */
  ignoreRules(): IgnoreRules {
    return new IgnoreRules(this.worktree, { useGitignore: this.config.getBool('core.useGitignore', true) });
  }

  /** Does the worktree file still hold what the index entry says? null: it is gone (apply-tree's check). */
  private async worktreeMatches(rel: string, staged: StagingIndex['files'][string]): Promise<boolean | null> {
    // One check for status and every switch: apply-tree's (symlink entries compare link targets).
    const s = await worktreeState(this.layout, rel, staged);
    return s === 'missing' ? null : s === 'clean';
  }

  async status(): Promise<StatusReport> {
    const headId = await this.headCommit();
    const tree = await this.treeOf(headId ? 'HEAD' : null);
    const idx = readIndex(this.layout);
    const all = new Set([...Object.keys(tree.files), ...Object.keys(idx.files)]);
    const files: FileStatus[] = [];
    for (const p of [...all].sort()) {
      const t = tree.files[p];
      const s = idx.files[p];
      const staged = !s ? 'deleted' : !t ? 'added' : t.sha256 !== s.entry.sha256 || t.size !== s.entry.size ? 'modified' : null;
      let unstaged: FileStatus['unstaged'] = null;
      if (s) {
        const m = await this.worktreeMatches(p, s);
        unstaged = m === null ? 'deleted' : m ? null : 'modified';
      }
      if (staged || unstaged) files.push({ path: p, staged: staged as FileStatus['staged'], unstaged });
    }
    const untracked = (await this.listWorktree()).filter((f) => !idx.files[f]);
    return {
      branch: await this.currentBranch(),
      head: headId,
      files,
      untracked,
      merging: fs.existsSync(this.layout.mergeState),
    };
  }

  // ---- history -------------------------------------------------------------------------------

  /** History from `rev` (or HEAD), or as `logCommits` takes it: ranges, paths, topological order. */
  async log(opts: { rev?: string } & LogOptions = {}): Promise<LogEntry[]> {
    return logCommits(this, { ...opts, revs: opts.revs ?? (opts.rev ? [opts.rev] : undefined) });
  }

  async mergeBase(a: string, b: string): Promise<string[]> {
    return mergeBase(await this.resolve(a), await this.resolve(b), this.meta);
  }

  /** Three-way, tensor-aware merge of `other` into HEAD (lib/repo/merge.ts, docs/merge.md). */
  merge(other: string, opts: merging.MergeOptions = {}): Promise<merging.MergeReport> {
    return merging.merge(this, other, opts);
  }

  /** Commits a merge in progress (after --no-commit, conflicts, or a crash). */
  mergeContinue(opts: { message?: string } = {}): Promise<string> {
    return merging.mergeContinue(this, opts);
  }

  /** The merge in progress (.coral/MERGE_STATE), or null. */
  mergeState(): merging.MergeStateFile | null {
    return merging.mergeState(this);
  }

  /** Abandons a merge in progress; worktree and index return to ORIG_HEAD. */
  mergeAbort(): Promise<{ orig: string; written: string[]; removed: string[] }> {
    return merging.mergeAbort(this);
  }

  /** Try-and-vet: one candidate checkpoint set per strategy under `out/<strategy>/`; refs and index untouched. */
  mergeTry(other: string, strategies: merging.MergeTryStrategies, out: string, opts: merging.MergeParams = {}) {
    return merging.mergeTry(this, other, strategies, out, opts);
  }

  // ---- branches and tags ---------------------------------------------------------------------

  async branches(): Promise<Array<{ name: string; id: string; current: boolean }>> {
    const cur = await this.currentBranch();
    return (await this.refs.listRefs('refs/heads/')).map((r) => {
      const name = r.name.replace(/^refs\/heads\//, '');
      return { name, id: r.id, current: name === cur };
    });
  }

  async createBranch(name: string, startRev = 'HEAD', opts: { force?: boolean } = {}): Promise<string> {
    checkShortRefName(name);
    const id = await this.resolve(startRev);
    const ref = `refs/heads/${name}`;
    const existing = await this.refs.readRef(ref);
    if (existing && !opts.force) throw new AlreadyExistsError(`a branch named '${name}' already exists`, { branch: name });
    // git: moving the checked-out branch under the worktree would stage the difference as a change.
    if (existing && (await this.currentBranch()) === name)
      throw new InvalidArgumentError(`cannot force update the branch '${name}' used by worktree at '${this.worktree}'`, { branch: name });
    await this.refs.updateRef(ref, id, {
      expectedOld: opts.force ? undefined : null,
      message: `branch: Created from ${startRev}`,
    });
    return id;
  }

  async deleteBranch(name: string, opts: { force?: boolean } = {}): Promise<void> {
    const ref = `refs/heads/${checkShortRefName(name)}`;
    const id = await this.refs.readRef(ref);
    if (!id) throw new RefNotFoundError(`branch '${name}' not found`);
    if ((await this.currentBranch()) === name)
      throw new InvalidArgumentError(`cannot delete branch '${name}': it is checked out`);
    if (!opts.force) {
      const head = await this.headCommit();
      const { isAncestor } = await import('./refs/ancestry');
      if (head && !(await isAncestor(id, head, this.meta)))
        throw new InvalidArgumentError(`branch '${name}' is not fully merged; use -D to delete it anyway`);
    }
    await this.refs.deleteRef(ref, id);
  }

  async tags(): Promise<Array<{ name: string; id: string; commit: string; annotated: boolean; tag?: TagObject }>> {
    const out = [];
    for (const r of await this.refs.listRefs('refs/tags/')) {
      const name = r.name.replace(/^refs\/tags\//, '');
      let tag: TagObject | undefined;
      try {
        tag = await this.meta.readTag(r.id);
      } catch {
        tag = undefined;
      }
      out.push({ name, id: r.id, commit: tag ? tag.object : r.id, annotated: !!tag, ...(tag ? { tag } : {}) });
    }
    return out;
  }

  /** Lightweight tag, or annotated when a message (and optional metrics) is given. */
  async createTag(
    name: string,
    rev = 'HEAD',
    opts: { message?: string; metrics?: Record<string, unknown>; force?: boolean } = {},
  ): Promise<string> {
    checkShortRefName(name, 'tag name');
    const commit = await this.resolve(rev);
    const ref = `refs/tags/${name}`;
    if ((await this.refs.readRef(ref)) && !opts.force) throw new AlreadyExistsError(`tag '${name}' already exists`, { tag: name });
    let target = commit;
    if (opts.message !== undefined || opts.metrics) {
      const tag: TagObject = {
        object: commit,
        tag: name,
        tagger: this.signature(),
        message: opts.message ?? '',
        metadata: opts.metrics ? { metrics: opts.metrics } : {},
      };
      target = await this.meta.put(encodeTag(tag));
    }
    await this.refs.updateRef(ref, target, { expectedOld: opts.force ? undefined : null, message: `tag: ${name}` });
    return target;
  }

  async deleteTag(name: string): Promise<void> {
    const ref = `refs/tags/${checkShortRefName(name, 'tag name')}`;
    const id = await this.refs.readRef(ref);
    if (!id) throw new RefNotFoundError(`tag '${name}' not found`);
    await this.refs.deleteRef(ref, id);
  }

  // ---- checkout ------------------------------------------------------------------------------

  /**
   * Switches HEAD to a branch (or detaches at a revision) and rewrites the
   * worktree byte-for-byte. Refuses to overwrite uncommitted changes unless
   * `force`. With `paths`, only restores those files from `rev` (HEAD stays).
   */
  async checkout(
    target: string,
    opts: { force?: boolean; create?: boolean; start?: string; detach?: boolean; paths?: string[] } = {},
  ): Promise<{ head: string; branch: string | null; written: string[]; removed: string[]; kept: string[] }> {
    if (opts.paths?.length) return this.restorePaths(target, opts.paths);
    let branch: string | null = null;
    let id: string;
    if (opts.create) {
      checkShortRefName(target);
      if (await this.refs.readRef(`refs/heads/${target}`))
        throw new AlreadyExistsError(`a branch named '${target}' already exists`, { branch: target });
      if (opts.start === undefined && !(await this.headCommit())) {
        // Unborn HEAD: the new branch is unborn too; index and files stay as they are (git).
        await this.refs.setHeadSymbolic(`refs/heads/${target}`);
        return { head: '', branch: target, written: [], removed: [], kept: [] };
      }
      id = await this.resolve(opts.start ?? 'HEAD');
      branch = target;
    } else {
      // A branch name first (git's rule), then any revision: the result is a detached HEAD.
      const local = !opts.detach && isValidRefName(`refs/heads/${target}`) ? await this.refs.readRef(`refs/heads/${target}`) : null;
      const current = target === 'HEAD' && !opts.detach ? await this.currentBranch() : null;
      if (current) {
        // `checkout HEAD` stays on the branch (git), it does not detach.
        branch = current;
        id = await this.resolve('HEAD');
      } else if (local) {
        branch = target;
        id = local;
      } else {
        id = await this.resolve(target);
      }
    }
    const headId = await this.headCommit();
    const from = await this.treeOf(headId ? 'HEAD' : null);
    const to = await this.readTree((await this.readCommit(id)).tree);
    // One dirty check for every switch (lib/worktree/apply-tree.ts): edits carry over or the switch refuses.
    const r = await applyTree(this, from, to, { force: opts.force, operation: 'checkout' });
    if (opts.create) await this.createBranch(target, id);
    if (branch) await this.refs.setHeadSymbolic(`refs/heads/${branch}`);
    else await this.refs.setHeadDetached(id);
    // As git does after a switch: a merge in progress is forgotten (what it staged stays staged).
    await fsp.rm(this.layout.mergeState, { force: true });
    return { head: id, branch, ...r };
  }

  private async restorePaths(rev: string, paths: string[]) {
    const id = await this.resolve(rev);
    const tree = await this.readTree((await this.readCommit(id)).tree);
    const written: string[] = [];
    const rels = paths.map((p) => this.pathspec(p));
    for (const rel of rels) {
      const keys = Object.keys(tree.files).filter((f) => inPathspec(f, rel));
      if (!keys.length) throw new InvalidArgumentError(`pathspec '${rel}' did not match any file in ${rev}`);
      await checkWritable(this.layout, keys);
      for (const f of keys) {
        await materializeWorktreeFile(this.reader, this.layout, f, tree.files[f]);
        written.push(f);
      }
    }
    await updateIndex(this.layout, async (ix) => {
      for (const f of written) {
        const st = await lstatWorktree(this.layout, f);
        ix.files[f] = { entry: tree.files[f], stat: st && !st.isDirectory() ? statOf(st) : null };
      }
    });
    return { head: (await this.headCommit()) ?? id, branch: await this.currentBranch(), written, removed: [], kept: [] };
  }

  /** Writes a committed file to an arbitrary destination (e.g. `coral show rev:path > f`). */
  async exportFile(rev: string, rel: string, dest: string): Promise<void> {
    const tree = await this.treeOf(rev);
    const e = tree.files[checkTreePath(rel)];
    if (!e) throw new RefNotFoundError(`path '${rel}' does not exist in ${rev}`);
    const abs = path.resolve(dest);
    const inTree = path.relative(this.worktree, abs);
    if (!inTree.startsWith('..') && !path.isAbsolute(inTree)) await materializeWorktreeFile(this.reader, this.layout, this.relPath(abs), e);
    else {
      await checkNotInCoral(this.layout, abs);
      await materializeFile(this.reader, e, abs);
    }
  }

  // ---- inspection and maintenance ------------------------------------------------------------

  /**
   * Tensor-aware diff between two revisions (`b` omitted: the index). Modified
   * tensors carry metrics unless `metrics: false`.
   */
  async diff(a: string, b?: string, opts: { metrics?: boolean; paths?: string[] } = {}): Promise<FileChange[]> {
    const left = await this.treeOf(a);
    const right: Tree =
      b === undefined
        ? { files: fileTable(Object.entries(readIndex(this.layout).files).map(([p, s]) => [p, s.entry] as const)) }
        : await this.treeOf(b);
    return diffSides(this.reader, left, { kind: 'tree', tree: right }, opts);
  }

  /** One tensor of a committed file, decoded and verified. */
  async readTensor(rev: string, file: string, name: string) {
    const e = (await this.treeOf(rev)).files[checkTreePath(file)];
    if (!e) throw new RefNotFoundError(`path '${file}' does not exist in ${rev}`);
    const te = e.tensors.find((t) => t.name === name);
    if (!te) throw new RefNotFoundError(`tensor '${name}' does not exist in ${rev}:${file}`);
    return readFileTensor(this.reader, e, te);
  }

  gc(opts?: GcOptions): Promise<GcReport> {
    return gc(this, opts);
  }

  fsck(opts?: { full?: boolean }): Promise<FsckReport> {
    return fsck(this, opts);
  }

  stats(): Promise<StatsReport> {
    return stats(this);
  }

  /**
   * The stored checkpoints closest to a worktree file or a committed `rev:path`
   * (which base was this fine-tuned from?). See lib/ingest/similarity.ts.
   */
  similar(target: SimilarTarget, opts?: SimilarOptions): Promise<SimilarReport> {
    return similarCheckpoints(this, target, opts);
  }

  /** Rebuilds `.coral/simindex/` from the stored objects. */
  rebuildSimilarityIndex(): Promise<RebuildReport> {
    return rebuildSimilarityIndex(this.layout.simindex, this, similaritySettings(this.config));
  }

  static isCommitId(s: string): boolean {
    return isHex(s, 64);
  }
}
