/**
 * The working-tree primitives: the one safe way to read the state of, write,
 * replace or delete a tracked path in a repository's working tree. Checkout,
 * `checkout -- paths`, merge/abort, rm and export into the worktree all go
 * through these functions; do not call `fs.rm`/`rename` on worktree paths
 * elsewhere.
 *
 * Rules (those of git):
 * - A leading path component is never followed when it is a symbolic link: a
 *   write refuses with UnsafePathError ("beyond a symbolic link"), a delete or
 *   a stat treats the path as absent. The last component may be a symlink: a
 *   write replaces the link itself (rename does not follow it), a delete
 *   unlinks the link, never its target.
 * - Nothing is ever written or deleted under `.coral/`, by name (tree paths
 *   reject a `.coral` component) or by real path (checked after the parents
 *   are resolved).
 * - Files are written to a temp file, verified, fsynced, then renamed into
 *   place. The temp file lives in `.coral/tmp` (same filesystem: a short name,
 *   so a 255-byte file name still fits) or, when the destination is on another
 *   filesystem, beside it under a short name. Temp names carry the writer's
 *   pid (`wt-<pid>-<hex>`, `.coral-tmp-<pid>-<hex>`) so that a later command
 *   removes those of dead writers (`sweepStaleTemps`, `isWorktreeTempName`).
 * - A directory left empty by a delete is removed, up to the worktree root. An
 *   empty directory where a file is to be written is removed; a non-empty one,
 *   or an untracked file where a directory is needed, is refused with
 *   DirtyWorktreeError unless `clobber` (files and symlinks only; a non-empty
 *   directory is never removed). Callers apply deletions before writes, so a
 *   path that turns from a file into a directory (or back) between two trees
 *   needs no special handling.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { ChecksumMismatchError, DirtyWorktreeError, UnsafePathError } from '../errors';
import { checkTreePath, type FileEntry } from '../models/tree';
import { pidAlive } from '../refs/lock';
import { crashPoint } from '../util/crash';
import { fileChunks, fsyncDirSync, verifySegments, writeHashedFile, type KnownTensors } from './materialize';
import type { ObjectReader } from '../odb/objects';
import { statOf, type StatCache } from './staging';
import { isSymlinkEntry, symlinkTarget } from './symlink';

/** The parts of a RepoLayout the primitives need. */
export interface WorktreeLayout {
  readonly worktree: string;
  readonly coral: string;
  readonly tmp: string;
}

// ---- temp names ------------------------------------------------------------------------------

const TMP_IN_CORAL = /^wt-(\d+)-[0-9a-f]+$/;
const TMP_BESIDE = /^\.coral-tmp-(\d+)-[0-9a-f]+$/;
/** Temp names of older versions (`.<name>.coral-<12 hex>`): hidden from listings, never ours to judge. */
const TMP_LEGACY = /^\..+\.coral-[0-9a-f]{12}$/;

function tmpSuffix(): string {
  return `${process.pid}-${crypto.randomBytes(6).toString('hex')}`;
}

/** True for a temp file name written by these primitives (or by an older version's checkout). */
export function isWorktreeTempName(name: string): boolean {
  return TMP_BESIDE.test(name) || TMP_LEGACY.test(name);
}

/** The writer pid of a temp file name of ours, or null. */
function tempOwner(name: string): number | null {
  const m = TMP_IN_CORAL.exec(name) ?? TMP_BESIDE.exec(name) ?? /^merge-(\d+)-[0-9a-f]+(\.[A-Za-z0-9]+)?$/.exec(name);
  return m ? Number(m[1]) : null;
}

/** Removes `file` if it is a temp file of ours whose writer is dead; true when removed. */
export function removeIfStaleTemp(file: string): boolean {
  const pid = tempOwner(path.basename(file));
  if (pid === null || pid === process.pid || pidAlive(pid)) return false;
  try {
    fs.unlinkSync(file);
    return true;
  } catch {
    return false;
  }
}

/**
 * Removes the temp files that killed checkouts and merges left in `.coral/tmp`
 * (those whose writer pid is dead). Cheap: one readdir. Returns the count.
 */
export function sweepStaleTemps(layout: Pick<WorktreeLayout, 'tmp'>): number {
  let names: string[];
  try {
    names = fs.readdirSync(layout.tmp);
  } catch {
    return 0;
  }
  let n = 0;
  for (const name of names) if (removeIfStaleTemp(path.join(layout.tmp, name))) n++;
  return n;
}

// ---- path checks -----------------------------------------------------------------------------

function errno(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException | null)?.code;
}

async function lstatOrNull(p: string): Promise<fs.Stats | null> {
  try {
    return await fsp.lstat(p);
  } catch (e) {
    if (errno(e) === 'ENOENT' || errno(e) === 'ENOTDIR') return null;
    throw e;
  }
}

function inside(child: string, parent: string): boolean {
  return child === parent || child.startsWith(parent.endsWith(path.sep) ? parent : parent + path.sep);
}

/** Throws unless the real path of directory `dir` is in the worktree and outside `.coral`. */
async function checkRealDir(layout: WorktreeLayout, dir: string, rel: string): Promise<void> {
  const real = await fsp.realpath(dir);
  const root = await fsp.realpath(layout.worktree);
  let coral: string;
  try {
    coral = await fsp.realpath(layout.coral);
  } catch {
    coral = path.join(root, path.basename(layout.coral));
  }
  if (!inside(real, root) || inside(real, coral))
    throw new UnsafePathError(
      `refusing to touch '${rel}': its directory resolves to ${real}, outside the working tree or inside .coral`,
      {
        path: rel,
        realPath: real,
      },
    );
}

/**
 * Walks the leading components of `rel`. Returns the absolute parent
 * directory, or null when a component is missing, a symlink or not a directory
 * and `mode` is 'probe'. With 'create', missing directories are made, symlinks
 * refused and files in the way removed when `clobber` (else refused).
 */
async function parentDir(
  layout: WorktreeLayout,
  rel: string,
  mode: 'probe' | 'create',
  clobber = false,
): Promise<string | null> {
  const parts = checkTreePath(rel).split('/');
  let dir = layout.worktree;
  for (let i = 0; i < parts.length - 1; i++) {
    dir = path.join(dir, parts[i]);
    const prefix = parts.slice(0, i + 1).join('/');
    for (;;) {
      const st = await lstatOrNull(dir);
      if (st?.isDirectory()) break;
      if (mode === 'probe') return null;
      if (st?.isSymbolicLink())
        throw new UnsafePathError(
          `'${rel}' is beyond a symbolic link ('${prefix}'); coral never writes through a symlinked directory. Move the link away, then retry`,
          {
            path: rel,
            link: prefix,
          },
        );
      if (st) {
        if (!clobber)
          throw new DirtyWorktreeError(`'${prefix}' is in the way of '${rel}': move or remove it, or use --force`, {
            paths: [prefix],
          });
        await fsp.unlink(dir);
      }
      try {
        await fsp.mkdir(dir);
        break;
      } catch (e) {
        if (errno(e) !== 'EEXIST') throw e; // raced: look again
      }
    }
  }
  return path.dirname(path.join(layout.worktree, ...parts));
}

/**
 * lstat of a tracked path, or null when it is absent or lies beyond a
 * symbolic link (then it is not in the worktree, as git sees it). Never follows
 * a link, not even in the last component.
 */
export async function lstatWorktree(layout: WorktreeLayout, rel: string): Promise<fs.Stats | null> {
  const dir = await parentDir(layout, rel, 'probe');
  if (dir === null) return null;
  return lstatOrNull(path.join(dir, path.basename(rel)));
}

/** The stat cache for the index entry of `rel` as it is on disk now (null: nothing cacheable there). */
export async function statCacheOf(layout: WorktreeLayout, rel: string): Promise<StatCache | null> {
  const st = await lstatWorktree(layout, rel);
  return st && !st.isDirectory() ? statOf(st) : null;
}

/**
 * Throws UnsafePathError when a leading component of `rel` is a symbolic link
 * (for commands that read a user-named path, e.g. `add sub/x`).
 */
export async function checkNotBeyondSymlink(layout: WorktreeLayout, rel: string): Promise<void> {
  const parts = checkTreePath(rel).split('/');
  let dir = layout.worktree;
  for (let i = 0; i < parts.length - 1; i++) {
    dir = path.join(dir, parts[i]);
    const st = await lstatOrNull(dir);
    if (!st) return;
    if (st.isSymbolicLink())
      throw new UnsafePathError(`'${rel}' is beyond a symbolic link ('${parts.slice(0, i + 1).join('/')}')`, {
        path: rel,
        link: parts.slice(0, i + 1).join('/'),
      });
  }
}

/**
 * Pre-flight for applying a tree: throws UnsafePathError for the first path
 * of `rels` that lies beyond a symbolic link which the caller will not remove
 * first (`removing(prefix)` true: a tracked path that the new tree drops), and
 * DirtyWorktreeError for a file in the way of a directory (unless `clobber`).
 * Run it before touching anything, so a refused checkout changes nothing.
 */
export async function checkWritable(
  layout: WorktreeLayout,
  rels: Iterable<string>,
  removing: (rel: string) => boolean = () => false,
  opts: { clobber?: boolean } = {},
): Promise<void> {
  const seen = new Set<string>();
  for (const rel of rels) {
    const parts = checkTreePath(rel).split('/');
    for (let i = 0; i < parts.length - 1; i++) {
      const prefix = parts.slice(0, i + 1).join('/');
      if (seen.has(prefix)) continue;
      seen.add(prefix);
      const st = await lstatOrNull(path.join(layout.worktree, ...parts.slice(0, i + 1)));
      if (!st) break;
      if (st.isSymbolicLink() && !removing(prefix))
        throw new UnsafePathError(
          `'${rel}' is beyond a symbolic link ('${prefix}'); coral never writes through a symlinked directory. Move the link away, then retry`,
          {
            path: rel,
            link: prefix,
          },
        );
      if (!st.isDirectory()) {
        if (!st.isSymbolicLink() && !removing(prefix) && !opts.clobber)
          throw new DirtyWorktreeError(`'${prefix}' is in the way of '${rel}': move or remove it, or use --force`, {
            paths: [prefix],
          });
        break;
      }
    }
  }
}

/**
 * For writes to a path outside the worktree (`show -o /tmp/x`, `merge --try --out`):
 * throws UnsafePathError when the real path of `dest` (its deepest existing
 * ancestor) lies inside `.coral`, e.g. through a symlink pointing into it.
 */
export async function checkNotInCoral(layout: Pick<WorktreeLayout, 'coral'>, dest: string): Promise<void> {
  let coral: string;
  try {
    coral = await fsp.realpath(layout.coral);
  } catch {
    return;
  }
  let p = path.resolve(dest);
  const rest: string[] = [];
  for (;;) {
    try {
      const real = path.join(await fsp.realpath(p), ...rest);
      if (inside(real, coral))
        throw new UnsafePathError(`refusing to write ${dest}: it resolves to ${real}, inside .coral`, {
          path: dest,
          realPath: real,
        });
      return;
    } catch (e) {
      if (errno(e) !== 'ENOENT' && errno(e) !== 'ENOTDIR') throw e;
      const up = path.dirname(p);
      if (up === p) return;
      rest.unshift(path.basename(p));
      p = up;
    }
  }
}

// ---- writing ---------------------------------------------------------------------------------

export interface WriteWorktreeOptions {
  /** Refuse (ChecksumMismatchError) unless the written bytes have this size and sha256; the old file is then untouched. */
  expect?: { size: number; sha256: string };
  /** Replace untracked files or symlinks in the way of a leading directory (checkout --force). */
  clobber?: boolean;
  /** File mode (default 0o644, subject to umask). */
  mode?: number;
}

/** Makes the destination's parents, checks them, and clears an empty directory at the destination. */
async function prepareDest(layout: WorktreeLayout, rel: string, clobber: boolean): Promise<string> {
  const dir = (await parentDir(layout, rel, 'create', clobber))!;
  await checkRealDir(layout, dir, rel);
  const dest = path.join(dir, path.basename(rel));
  const st = await lstatOrNull(dest);
  if (st?.isDirectory()) {
    try {
      await fsp.rmdir(dest);
    } catch (e) {
      if (errno(e) === 'ENOTEMPTY' || errno(e) === 'EEXIST')
        throw new DirtyWorktreeError(
          `'${rel}' is a directory with files in it; move them away before checking out the file`,
          { paths: [rel] },
        );
      throw e;
    }
  }
  return dest;
}

async function sameDevice(a: string, b: string): Promise<boolean> {
  try {
    return (await fsp.stat(a)).dev === (await fsp.stat(b)).dev;
  } catch {
    return false;
  }
}

/** A temp path for a file to be renamed to `dest`: in `.coral/tmp` when on the same filesystem, else beside it. */
async function tempFor(layout: WorktreeLayout, destDir: string): Promise<string> {
  try {
    await fsp.mkdir(layout.tmp, { recursive: true });
    if (await sameDevice(layout.tmp, destDir)) return path.join(layout.tmp, `wt-${tmpSuffix()}`);
  } catch {
    /* fall back to a sibling */
  }
  return path.join(destDir, `.coral-tmp-${tmpSuffix()}`);
}

/**
 * Writes `chunks` as worktree file `rel` atomically (temp + fsync + rename),
 * following the rules at the top of this file. On any failure the temp file
 * is removed and the old file (if any) is left as it was.
 *
 * @example
 * await writeWorktreeFile(repo.layout, 'ckpt/model.safetensors', [bytes], { expect: { size, sha256 } });
 */
export async function writeWorktreeFile(
  layout: WorktreeLayout,
  rel: string,
  chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  opts: WriteWorktreeOptions = {},
): Promise<{ size: number; sha256: string }> {
  const dest = await prepareDest(layout, rel, !!opts.clobber);
  const tmp = await tempFor(layout, path.dirname(dest));
  let done = false;
  try {
    const out = await writeHashedFile(tmp, chunks, opts.mode ?? 0o644);
    if (opts.expect && (out.size !== opts.expect.size || out.sha256 !== opts.expect.sha256))
      throw new ChecksumMismatchError(
        `re-assembled ${rel} does not match its committed sha256 (${opts.expect.sha256})`,
        {
          path: rel,
          expected: opts.expect.sha256,
          actual: out.sha256,
        },
      );
    crashPoint('worktree:before-rename');
    await renameInto(layout, rel, tmp, dest);
    done = true;
    crashPoint('worktree:after-rename');
    return out;
  } finally {
    if (!done) await fsp.rm(tmp, { force: true });
  }
}

/** rename(tmp, dest), re-preparing once if the destination changed meanwhile (e.g. became a directory). */
async function renameInto(layout: WorktreeLayout, rel: string, tmp: string, dest: string): Promise<void> {
  try {
    await fsp.rename(tmp, dest);
  } catch (e) {
    if (errno(e) !== 'EISDIR' && errno(e) !== 'ENOTEMPTY' && errno(e) !== 'EEXIST' && errno(e) !== 'ENOENT') throw e;
    dest = await prepareDest(layout, rel, false);
    await fsp.rename(tmp, dest);
  }
  fsyncDirSync(path.dirname(dest));
}

/**
 * Moves an already written and verified file (`src`, e.g. a merge result in
 * `.coral/tmp`) to worktree path `rel`, with the same checks as
 * writeWorktreeFile. Returns false, leaving `src` in place, when `src` is on
 * another filesystem (the caller then writes the file instead).
 */
export async function placeWorktreeFile(
  layout: WorktreeLayout,
  rel: string,
  src: string,
  opts: { clobber?: boolean } = {},
): Promise<boolean> {
  const dest = await prepareDest(layout, rel, !!opts.clobber);
  if (!(await sameDevice(src, path.dirname(dest)))) return false;
  await renameInto(layout, rel, src, dest);
  return true;
}

/** Re-assembles a committed file entry into worktree path `rel` (verified against its sha256). */
export async function materializeWorktreeFile(
  reader: ObjectReader,
  layout: WorktreeLayout,
  rel: string,
  entry: FileEntry,
  opts: { known?: KnownTensors; clobber?: boolean } = {},
): Promise<void> {
  // A link is recreated as a link (lib/worktree/symlink.ts), never written through.
  if (isSymlinkEntry(entry)) return writeWorktreeSymlink(layout, rel, await symlinkTarget(reader, entry), opts);
  // writeWorktreeFile checks size and sha256 before the rename (`expect`); on a mismatch the
  // segments are decoded again, verified, to name a bad object.
  try {
    await writeWorktreeFile(
      layout,
      rel,
      fileChunks(reader, entry, opts.known, { release: true, checkedBySha256: true }),
      { expect: { size: entry.size, sha256: entry.sha256 }, clobber: opts.clobber },
    );
  } catch (e) {
    if (e instanceof ChecksumMismatchError && (e.data as { path?: string } | undefined)?.path === rel)
      await verifySegments(reader, entry, opts.known);
    throw e;
  }
}

/** Creates (or replaces) a symbolic link at worktree path `rel`, with the same rules as writeWorktreeFile. */
export async function writeWorktreeSymlink(
  layout: WorktreeLayout,
  rel: string,
  target: string | Buffer,
  opts: { clobber?: boolean } = {},
): Promise<void> {
  const dest = await prepareDest(layout, rel, !!opts.clobber);
  const tmp = path.join(path.dirname(dest), `.coral-tmp-${tmpSuffix()}`);
  await fsp.symlink(target, tmp);
  try {
    await renameInto(layout, rel, tmp, dest);
  } catch (e) {
    await fsp.rm(tmp, { force: true });
    throw e;
  }
}

// ---- deleting --------------------------------------------------------------------------------

/**
 * Deletes worktree path `rel` (a file or a symlink, never a link's target nor
 * a directory), then removes the directories it leaves empty. A path beyond a
 * symbolic link is not in the worktree: nothing is deleted. Returns true when
 * something was unlinked.
 */
export async function removeWorktreeFile(layout: WorktreeLayout, rel: string): Promise<boolean> {
  const dir = await parentDir(layout, rel, 'probe');
  if (dir === null) return false;
  await checkRealDir(layout, dir, rel);
  const file = path.join(dir, path.basename(rel));
  const st = await lstatOrNull(file);
  let removed = false;
  if (st && !st.isDirectory()) {
    try {
      await fsp.unlink(file);
      removed = true;
    } catch (e) {
      if (errno(e) !== 'ENOENT') throw e;
    }
  }
  await pruneEmptyDirs(layout, rel);
  return removed;
}

/** Removes the now-empty leading directories of `rel`, deepest first, stopping at the first non-empty one. */
export async function pruneEmptyDirs(layout: WorktreeLayout, rel: string): Promise<void> {
  const parts = rel.split('/');
  for (let i = parts.length - 1; i >= 1; i--) {
    const d = path.join(layout.worktree, ...parts.slice(0, i));
    const st = await lstatOrNull(d);
    if (!st || !st.isDirectory()) return;
    try {
      await fsp.rmdir(d);
    } catch {
      return; // not empty (or not ours to remove)
    }
  }
}
