/**
 * Ignore rules: `.coralignore` files, and `.gitignore` files unless
 * `core.useGitignore` is false, in any directory of the worktree, with
 * gitignore syntax and precedence (matching is the `ignore` package, the
 * gitignore-spec matcher eslint and prettier use):
 *
 * - a file's patterns are relative to its directory; a deeper file's decision
 *   wins over a shallower one's; within a directory, `.coralignore` is read
 *   after `.gitignore`, so its patterns win; within a file the last match wins;
 * - a file inside an ignored directory stays ignored (the directory is not
 *   even read, as in git).
 *
 * Ignoring only concerns untracked paths: tracked files stay tracked and keep
 * being staged by `add <dir>` even when a pattern matches them.
 *
 * @see https://git-scm.com/docs/gitignore
 * @example
 * const rules = new IgnoreRules('/data/ckpts', { useGitignore: true });
 * await rules.ignores('runs/__pycache__/x.pyc', false) // true with "__pycache__/" in .coralignore
 */
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import ignore from 'ignore';

type Ignore = ignore.Ignore;
import { CORAL_DIR } from '../layout';
import { isWorktreeTempName, removeIfStaleTemp } from './files';

/** Ignore files read in each directory, in precedence order (later wins). */
export const GITIGNORE = '.gitignore';
export const CORALIGNORE = '.coralignore';

/** Never part of the worktree: coral's and git's own directories, and coral's temp files. */
export function isInternalName(name: string): boolean {
  return name === CORAL_DIR || name === '.git' || name.includes('.coral-');
}

export class IgnoreRules {
  /** Directory (worktree-relative posix, '' = root) -> its rules, or null when it has none. */
  private readonly dirs = new Map<string, Promise<Ignore | null>>();
  private readonly files: string[];

  constructor(
    readonly worktree: string,
    opts: { useGitignore?: boolean } = {},
  ) {
    this.files = opts.useGitignore === false ? [CORALIGNORE] : [GITIGNORE, CORALIGNORE];
  }

  private rulesOf(dir: string): Promise<Ignore | null> {
    let p = this.dirs.get(dir);
    if (!p) this.dirs.set(dir, (p = this.load(dir)));
    return p;
  }

  private async load(dir: string): Promise<Ignore | null> {
    let ig: Ignore | null = null;
    for (const name of this.files) {
      const abs = path.join(this.worktree, ...(dir ? dir.split('/') : []), name);
      // Like git (2.32+), an ignore file that is a symlink is not followed.
      const st = await fsp.lstat(abs).catch(() => null);
      if (!st?.isFile()) continue;
      const text = await fsp.readFile(abs, 'utf8');
      // Git matches case-sensitively unless core.ignorecase; so do we.
      (ig ??= ignore({ ignorecase: false })).add(text);
    }
    return ig;
  }

  /**
   * Is `rel` ignored, given that its parent directories are not? (The walk
   * never enters an ignored directory, so this is all it needs.)
   */
  async ignoredEntry(rel: string, isDir: boolean): Promise<boolean> {
    const parts = rel.split('/');
    // Deepest directory first: the first file with an opinion decides.
    for (let i = parts.length - 1; i >= 0; i--) {
      const ig = await this.rulesOf(parts.slice(0, i).join('/'));
      if (!ig) continue;
      const r = ig.test(parts.slice(i).join('/') + (isDir ? '/' : ''));
      if (r.ignored) return true;
      if (r.unignored) return false;
    }
    return false;
  }

  /** Is `rel` ignored, by its own name or because a directory above it is? */
  async ignores(rel: string, isDir: boolean): Promise<boolean> {
    const parts = rel.split('/');
    for (let i = 1; i < parts.length; i++) if (await this.ignoredEntry(parts.slice(0, i).join('/'), true)) return true;
    return this.ignoredEntry(rel, isDir);
  }
}

/** The ignore rules of the worktree as it is now (`core.useGitignore` decides on .gitignore files). */
export function ignoreRules(ctx: {
  worktree: string;
  config: { getBool(key: string, fallback: boolean): boolean };
}): IgnoreRules {
  return new IgnoreRules(ctx.worktree, { useGitignore: ctx.config.getBool('core.useGitignore', true) });
}

export interface WalkOptions {
  /** Skip ignored paths with these rules (none: list everything). */
  rules?: IgnoreRules | null;
  /** Tracked paths: listed even when ignored. */
  tracked?: ReadonlySet<string>;
}

/**
 * Files and symlinks under `dir` (absolute, inside `worktree`), as sorted
 * worktree-relative posix paths. A symlink is listed as itself and never
 * descended into, even when it points to a directory (git records the link).
 */
export async function walkWorktree(worktree: string, dir: string, opts: WalkOptions = {}): Promise<string[]> {
  const out: string[] = [];
  const tracked = opts.tracked ?? new Set<string>();
  // Directories that hold tracked files: an ignored one is still entered for those.
  const trackedDirs = new Set<string>();
  for (const f of tracked)
    for (let i = f.indexOf('/'); i >= 0; i = f.indexOf('/', i + 1)) trackedDirs.add(f.slice(0, i));
  const walk = async (d: string, ignoredAbove: boolean) => {
    let ents;
    try {
      ents = await fsp.readdir(d, { withFileTypes: true });
    } catch (e) {
      // A directory removed or made unreadable while we walk: nothing to list there.
      if (['ENOENT', 'ENOTDIR', 'EACCES'].includes((e as NodeJS.ErrnoException).code ?? '')) return;
      throw e;
    }
    for (const ent of ents) {
      const p = path.join(d, ent.name);
      if (isWorktreeTempName(ent.name)) {
        removeIfStaleTemp(p); // left by a killed writer
        continue;
      }
      if (isInternalName(ent.name)) continue;
      const rel = path.relative(worktree, p).split(path.sep).join('/');
      const isDir = ent.isDirectory();
      if (!isDir && !ent.isFile() && !ent.isSymbolicLink()) continue; // sockets, fifos, devices
      const ignored = ignoredAbove || (!!opts.rules && (await opts.rules.ignoredEntry(rel, isDir)));
      if (isDir) {
        if (!ignored || trackedDirs.has(rel)) await walk(p, ignored);
      } else if (!ignored || tracked.has(rel)) {
        out.push(rel);
      }
    }
  };
  await walk(
    dir,
    !!opts.rules &&
      dir !== worktree &&
      (await opts.rules.ignores(path.relative(worktree, dir).split(path.sep).join('/'), true)),
  );
  return out.sort();
}
