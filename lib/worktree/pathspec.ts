/**
 * Paths as the user types and reads them, in one place: pathspecs relative to
 * where the user stands, tree paths of the files a command touches, and
 * worktree paths shown relative to the user (`../x` for outside), as git shows
 * them. context.ts `relPath`/`pathspec` are these, bound to a repository.
 *
 * @example
 * pathspec('/repo', '/repo/ckpt', 'model.pt')   // 'ckpt/model.pt'
 * pathspec('/repo', '/repo/ckpt', '.')          // 'ckpt'
 * pathspec('/repo', '/repo', '.')               // '' (the whole worktree)
 * treePath('/repo', '/repo/ckpt/model.pt')      // 'ckpt/model.pt' ('' and .coral/… are refused)
 * displayPath('/repo', '/repo/ckpt', 'data/x')  // '../data/x'
 */
import * as path from 'node:path';
import { InvalidArgumentError } from '../errors';
import { CORAL_DIR } from '../layout';
import { checkTreePath } from '../models/tree';

/** `abs` relative to the worktree, in posix form; null when it lies outside. */
function relativePosix(worktree: string, abs: string): string | null {
  const rel = path.relative(worktree, abs);
  if (rel.startsWith('..') || path.isAbsolute(rel)) return null;
  return rel.split(path.sep).join('/');
}

/** Worktree-relative posix path of `p` typed in `cwd`; '' is the worktree root. */
export function pathspec(worktree: string, cwd: string, p: string): string {
  const rel = relativePosix(worktree, path.resolve(cwd, p));
  if (rel === null) throw new InvalidArgumentError(`${p} is outside the repository at ${worktree}`, { path: p });
  return rel;
}

/**
 * The tree path of a file the user names (`p` resolved against the process
 * cwd): rejects the worktree root itself, paths outside it or inside `.coral`,
 * and names a tree cannot hold.
 */
export function treePath(worktree: string, p: string): string {
  const posix = relativePosix(worktree, path.resolve(p));
  if (!posix) throw new InvalidArgumentError(`${p} is outside the repository at ${worktree}`);
  if (posix === CORAL_DIR || posix.startsWith(`${CORAL_DIR}/`))
    throw new InvalidArgumentError(`${p} is inside ${CORAL_DIR}/`);
  return checkTreePath(posix);
}

/** Like treePath, but the worktree root itself is accepted as '' (every path: `checkout <rev> -- .`). */
export function treePathspec(worktree: string, p: string): string {
  return path.resolve(p) === worktree ? '' : treePath(worktree, p);
}

/** A worktree-relative posix path as seen from `cwd` (posix separators). */
export function displayPath(worktree: string, cwd: string, rel: string): string {
  const from = path.relative(worktree, path.resolve(cwd)).split(path.sep).join('/');
  if (!from) return rel;
  return path.posix.relative(from, rel) || '.';
}
