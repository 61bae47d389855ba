/**
 * The one way the worktree and the index move from one tree to another:
 * checkout (branch, commit, -b), reset --hard, merge (fast-forward, the merged
 * tree, --continue after a crash, --abort). One dirty check, git's rules
 * (unpack-trees "twoway merge"):
 *
 * - A path whose entry is the same in `from` and `to` keeps the user's staged
 *   entry and worktree file untouched (local changes are carried over).
 * - A path that differs between `from` and `to` is "blocked" when it has a local
 *   change: its index entry differs from `from` (staged), or its worktree file
 *   differs from the index (unstaged), or an untracked file sits where `to` puts
 *   one. A missing worktree file loses nothing and does not block. An index
 *   entry that already equals `to` does not block either.
 * - Any blocked path refuses the whole switch with DirtyWorktreeError (data.paths)
 *   before a single file is written.
 * - `force`: nothing blocks; every path ends as `to` says (index and file).
 *   Files that are only staged (in neither tree) are unstaged but left on disk.
 * - `strict` (merge's precondition): every local change anywhere blocks, not
 *   only those on paths that differ.
 *
 * The index lock is held from the check until the new index is committed, so
 * no `add` slips in between.
 *
 * @example
 * const r = await applyTree(ctx, headTree, targetTree, { operation: 'checkout' });
 * r.written; r.removed; r.kept // kept: paths whose local changes were carried over
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CoralError, DirtyWorktreeError } from '../errors';
import { fileTable, type FileEntry, type Tree } from '../models';
import type { RepoLayout } from '../layout';
import type { ObjectReader } from '../odb/objects';
import {
  emptyIndex,
  encodeIndexFile,
  lockIndex,
  readIndex,
  sameStat,
  type StagedFile,
  type StagingIndex,
} from './staging';
import { isSymlinkEntry, symlinkMatches } from './symlink';
import { checkWritable, lstatWorktree, materializeWorktreeFile, removeWorktreeFile, statCacheOf } from './files';
import { sha256File } from '../util/fsutil';

/** What applying a tree needs from a repository (a narrow context, not the Repository). */
export interface WorktreeContext {
  readonly worktree: string;
  readonly layout: RepoLayout;
  readonly reader: ObjectReader;
}

/** Files written ahead of time (merge's planner): moved into the worktree by rename, or false. */
export interface PreparedFiles {
  takeIntoWorktree(layout: RepoLayout, path: string, sha256: string): Promise<boolean>;
}

export interface ApplyTreeOptions {
  /** Overwrite local changes (checkout -f, reset --hard, merge --abort/--continue). */
  force?: boolean;
  /** Every local change blocks, not only those on paths that differ (merge). */
  strict?: boolean;
  /** Names the operation in the refusal message ('checkout', 'merge', ...). */
  operation?: string;
  prepared?: PreparedFiles;
  /** Read a corrupt index as empty instead of failing (force only: reset --hard). */
  ignoreCorruptIndex?: boolean;
}

export interface ApplyTreeResult {
  written: string[];
  removed: string[];
  /** Paths whose local change (staged or not) was carried over unchanged. */
  kept: string[];
}

function absPath(worktree: string, rel: string): string {
  return path.join(worktree, ...rel.split('/'));
}

export function sameEntry(a: FileEntry | undefined, b: FileEntry | undefined): boolean {
  if (!a || !b) return a === b;
  return a.sha256 === b.sha256 && a.size === b.size;
}

/**
 * Does worktree path `rel` hold `e`? A symlink entry matches a link with the same target; a
 * file entry matches a regular file (never a link to one) with its bytes (stat cache of
 * `staged` when it names `e`, then size, then sha256). `st` is the path's lstat from
 * lstatWorktree (null: missing or beyond a symlink).
 */
async function holds(
  worktree: string,
  rel: string,
  e: FileEntry,
  staged: StagedFile | undefined,
  st: fs.Stats | null,
): Promise<boolean> {
  if (!st) return false;
  const abs = absPath(worktree, rel);
  if (isSymlinkEntry(e)) return st.isSymbolicLink() && (await symlinkMatches(abs, e)) === true;
  if (!st.isFile()) return false;
  if (staged && sameEntry(staged.entry, e) && sameStat(staged.stat, st)) return true;
  if (st.size !== e.size) return false;
  return (await sha256File(abs)) === e.sha256;
}

/**
 * The worktree file at `rel` against its index entry: missing, clean, or modified (stat cache,
 * then sha256). A path beyond a symbolic link, or a directory, is not in the worktree: missing.
 */
export async function worktreeState(
  layout: RepoLayout,
  rel: string,
  staged: StagedFile,
): Promise<'missing' | 'clean' | 'modified'> {
  const st = await lstatWorktree(layout, rel);
  if (!st || st.isDirectory()) return 'missing';
  return (await holds(layout.worktree, rel, staged.entry, staged, st)) ? 'clean' : 'modified';
}

/** Paths whose local changes the switch from `from` to `to` would overwrite (empty: safe). */
export async function blockedPaths(
  ctx: WorktreeContext,
  idx: StagingIndex,
  from: Tree,
  to: Tree,
  opts: { strict?: boolean } = {},
): Promise<string[]> {
  const blocked: string[] = [];
  for (const p of allPaths(idx, from, to)) {
    const f = from.files[p];
    const t = to.files[p];
    const i = idx.files[p];
    const differs = !sameEntry(f, t);
    if (!differs && !opts.strict) continue;
    if (!i) {
      if (f) {
        // A staged deletion blocks when `to` brings the file back (strict: always); when `to`
        // deletes it too, the index already agrees with `to` and the file (if kept) is untracked.
        if (t || opts.strict) blocked.push(p);
        continue;
      }
      // Untracked file where `to` puts one (harmless when it already holds those bytes).
      // (beyond a symlink nothing is in the way: checkWritable refuses that path instead).
      const st = t ? await lstatWorktree(ctx.layout, p) : null;
      // A directory where `to` puts a file is checked when written: it must hold nothing untracked.
      if (t && st && !st.isDirectory() && !(await holds(ctx.worktree, p, t, undefined, st))) blocked.push(p);
      continue;
    }
    const staged = !sameEntry(i.entry, f);
    const wt = await worktreeState(ctx.layout, p, i);
    if (opts.strict) {
      if (staged || wt !== 'clean') blocked.push(p);
      continue;
    }
    if (wt === 'modified') blocked.push(p);
    else if (staged && !sameEntry(i.entry, t)) blocked.push(p);
  }
  return blocked;
}

function allPaths(idx: StagingIndex, from: Tree, to: Tree): string[] {
  const s = new Set<string>([...Object.keys(from.files), ...Object.keys(to.files), ...Object.keys(idx.files)]);
  return [...s].sort();
}

function refusal(operation: string, paths: string[]): DirtyWorktreeError {
  const shown = paths.slice(0, 10).join(', ') + (paths.length > 10 ? `, ... (${paths.length - 10} more)` : '');
  const msg =
    operation === 'merge'
      ? `cannot merge with local changes (${shown}); commit them or check out the files first`
      : `your local changes would be overwritten by ${operation}: ${shown}; commit them, or use --force`;
  return new DirtyWorktreeError(msg, { paths });
}

/** Throws DirtyWorktreeError when switching from `from` to `to` would lose a local change. */
export async function checkSwitch(
  ctx: WorktreeContext,
  from: Tree,
  to: Tree,
  opts: { strict?: boolean; operation?: string } = {},
): Promise<void> {
  const blocked = await blockedPaths(ctx, readIndex(ctx.layout), from, to, opts);
  if (blocked.length) throw refusal(opts.operation ?? 'checkout', blocked);
}

function readIndexFor(ctx: WorktreeContext, opts: ApplyTreeOptions): StagingIndex {
  try {
    return readIndex(ctx.layout);
  } catch (e) {
    if (opts.force && opts.ignoreCorruptIndex && e instanceof CoralError) return emptyIndex();
    throw e;
  }
}

/**
 * Moves the worktree and the index from tree `from` (what HEAD names now) to
 * tree `to`, carrying local changes over or refusing (see the file comment).
 * Refs are the caller's business: move them after this returns.
 */
export async function applyTree(
  ctx: WorktreeContext,
  from: Tree,
  to: Tree,
  opts: ApplyTreeOptions = {},
): Promise<ApplyTreeResult> {
  const lock = await lockIndex(ctx.layout);
  try {
    const idx = readIndexFor(ctx, opts);
    if (!opts.force) {
      const blocked = await blockedPaths(ctx, idx, from, to, { strict: opts.strict });
      if (blocked.length) throw refusal(opts.operation ?? 'checkout', blocked);
    }
    const out: ApplyTreeResult = { written: [], removed: [], kept: [] };
    const next: StagingIndex = { version: 1, files: fileTable<StagedFile>() };
    const writes: Array<[string, FileEntry]> = [];
    const removals: string[] = [];
    for (const p of allPaths(idx, from, to)) {
      const f = from.files[p];
      const t = to.files[p];
      const i = idx.files[p];
      if (!opts.force && sameEntry(f, t)) {
        // Carried over: the user's index entry and file stay as they are.
        if (i) next.files[p] = i;
        if (!sameEntry(i?.entry, t) || (i && (await worktreeState(ctx.layout, p, i)) === 'modified')) out.kept.push(p);
        continue;
      }
      if (t) writes.push([p, t]);
      // Not in `to`: delete the file that `from` and the index track. A file the index no longer
      // tracks (rm --cached) is the user's untracked file, and a staged-only file (force) is
      // unstaged: both stay on disk. A path beyond a symlink is not in the worktree: never touched.
      else if (f && i && (await lstatWorktree(ctx.layout, p))) removals.push(p);
    }
    // Pre-flight before anything changes: no write beyond a symlink, nothing in the way of a directory.
    const removing = new Set(removals);
    await checkWritable(
      ctx.layout,
      writes.map(([p]) => p),
      (prefix) => removing.has(prefix),
      { clobber: opts.force },
    );
    // Removals first, so a file that becomes a directory (or back) has room; emptied directories go.
    for (const p of removals) {
      await removeWorktreeFile(ctx.layout, p);
      out.removed.push(p);
    }
    for (const [p, t] of writes) {
      const i = idx.files[p];
      let have: boolean;
      if (opts.force) have = await holds(ctx.worktree, p, t, i, await lstatWorktree(ctx.layout, p));
      else if (i && sameEntry(i.entry, t))
        have = (await lstatWorktree(ctx.layout, p)) !== null; // checked clean above
      else have = false;
      if (!have) {
        if (!(await opts.prepared?.takeIntoWorktree(ctx.layout, p, t.sha256)))
          await materializeWorktreeFile(ctx.reader, ctx.layout, p, t, { clobber: opts.force });
        out.written.push(p);
      }
      next.files[p] = { entry: t, stat: await statCacheOf(ctx.layout, p) };
    }
    await lock.write(encodeIndexFile(next));
    await lock.commit();
    return out;
  } catch (e) {
    await lock.release();
    throw e;
  }
}

/** Is `file` under pathspec `spec` ('' = the whole repository; a directory covers what it holds)? */
export function inPathspec(file: string, spec: string): boolean {
  return spec === '' || file === spec || file.startsWith(`${spec}/`);
}
