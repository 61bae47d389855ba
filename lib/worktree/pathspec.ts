/**
 * Paths as the user types and reads them: pathspecs relative to where the user
 * stands, and worktree paths shown relative to it (`../x` for outside), as git
 * shows them.
 *
 * @example
 * pathspec('/repo', '/repo/ckpt', 'model.pt')   // 'ckpt/model.pt'
 * pathspec('/repo', '/repo/ckpt', '.')          // 'ckpt'
 * pathspec('/repo', '/repo', '.')               // '' (the whole worktree)
 * displayPath('/repo', '/repo/ckpt', 'data/x')  // '../data/x'
 */
import * as path from 'node:path';
import { InvalidArgumentError } from '../errors';

/** Worktree-relative posix path of `p` typed in `cwd`; '' is the worktree root. */
export function pathspec(worktree: string, cwd: string, p: string): string {
  const rel = path.relative(worktree, path.resolve(cwd, p));
  if (rel.startsWith('..') || path.isAbsolute(rel))
    throw new InvalidArgumentError(`${p} is outside the repository at ${worktree}`, { path: p });
  return rel.split(path.sep).join('/');
}

/** A worktree-relative posix path as seen from `cwd` (posix separators). */
export function displayPath(worktree: string, cwd: string, rel: string): string {
  const from = path.relative(worktree, path.resolve(cwd)).split(path.sep).join('/');
  if (!from) return rel;
  return path.posix.relative(from, rel) || '.';
}
