/**
 * `coral git install` / `uninstall` and `coral git track` / `untrack`.
 *
 * install writes git config (global by default, the repository's with
 * `local`):
 *   filter.coral.process  = <coral> git filter-process   (one process per git command)
 *   filter.coral.required = true                          (a failed filter fails the git command)
 *   diff.coral.command    = <coral> git diff-driver        (git diff; `git log -p --ext-diff`)
 *   diff.coral.textconv   = <coral> git textconv           (git log -p, --stat: one line per group)
 *   merge.coral.driver    = <coral> git merge-driver %O %A %B %P
 * and, inside a repository, a pre-push hook that sends payloads first.
 *
 * track writes `.gitattributes` lines `<pattern> filter=coral diff=coral
 * merge=coral -text` at the top of the working tree, with the pattern
 * rewritten for the root when given from a subdirectory, as git would read it
 * from that directory's own .gitattributes.
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { InvalidArgumentError, invalidParameter } from '../errors';
import { isMergeStrategy, MERGE_STRATEGIES } from '../merge/strategies/index';
import { git, gitDirs, gitLine, gitRaw } from './gitcmd';

/** The shell words that run this coral: node and the package's bin script. */
export function coralCommand(): string {
  const bin = path.resolve(__dirname, '..', '..', 'bin', 'coral.js');
  return `${shellQuote(process.execPath)} ${shellQuote(bin)}`;
}

export function shellQuote(s: string): string {
  return /^[A-Za-z0-9_./:=@%+-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

export interface InstallOptions {
  /** Write the repository's config instead of the user's (~/.gitconfig). */
  local?: boolean;
  /** The command that runs coral (default: this node and package). */
  command?: string;
  /** Replace a pre-push hook that is not coral's. */
  force?: boolean;
  /** Where payloads travel: `coral` remotes (default) or `lfs` (git-lfs objects; git config `coral.backend`). */
  backend?: 'coral' | 'lfs';
}

export interface InstallReport {
  scope: 'local' | 'global';
  config: Record<string, string>;
  /** The pre-push hook written, or null outside a repository. */
  hook: string | null;
}

const HOOK_MARK = '# coral git pre-push hook';

/** The config `install` writes. */
export function filterConfig(command = coralCommand()): Record<string, string> {
  return {
    'filter.coral.process': `${command} git filter-process`,
    'filter.coral.required': 'true',
    'diff.coral.command': `${command} git diff-driver`,
    'diff.coral.textconv': `${command} git textconv`,
    'merge.coral.name': 'coral checkpoint merge (per parameter group)',
    'merge.coral.driver': `${command} git merge-driver %O %A %B %P`,
  };
}

async function insideRepo(cwd: string): Promise<boolean> {
  return (await gitRaw(cwd, ['rev-parse', '--git-dir'])).code === 0;
}

/** The hooks directory git uses (core.hooksPath, else <git dir>/hooks). */
async function hooksDir(cwd: string): Promise<string> {
  const p = await gitLine(cwd, ['rev-parse', '--git-path', 'hooks']);
  return path.resolve(cwd, p);
}

export async function install(cwd: string, opts: InstallOptions = {}): Promise<InstallReport> {
  const local = !!opts.local;
  if (local && !(await insideRepo(cwd)))
    throw new InvalidArgumentError(`--local needs a git repository, and ${cwd} is not inside one`);
  const backend = opts.backend ?? 'coral';
  if (backend !== 'coral' && backend !== 'lfs') throw invalidParameter('backend', '"coral" or "lfs"', backend);
  if (backend === 'lfs' && (await gitRaw(cwd, ['lfs', 'version'])).code !== 0)
    throw new InvalidArgumentError('--backend lfs needs git-lfs (`git lfs version` failed); install git-lfs first');
  const cfg = { ...filterConfig(opts.command), 'coral.backend': backend };
  for (const [k, v] of Object.entries(cfg)) await git(cwd, ['config', local ? '--local' : '--global', k, v]);
  let hook: string | null = null;
  if (await insideRepo(cwd)) {
    const dir = await hooksDir(cwd);
    await fsp.mkdir(dir, { recursive: true });
    hook = path.join(dir, 'pre-push');
    const body = `#!/bin/sh\n${HOOK_MARK}: sends checkpoint payloads before git pushes the pointers\nexec ${
      opts.command ?? coralCommand()
    } git pre-push "$@"\n`;
    if (fs.existsSync(hook)) {
      const old = await fsp.readFile(hook, 'utf8');
      if (!old.includes(HOOK_MARK) && !opts.force)
        throw new InvalidArgumentError(
          `${hook} exists and is not coral's; add \`coral git pre-push "$@"\` to it, or install with --force to replace it`,
          { hook },
        );
    }
    await fsp.writeFile(hook, body, { mode: 0o755 });
    await fsp.chmod(hook, 0o755);
  }
  return { scope: local ? 'local' : 'global', config: cfg, hook };
}

/** Removes the config install wrote (and coral's pre-push hook). */
export async function uninstall(cwd: string, opts: { local?: boolean } = {}): Promise<void> {
  const scope = opts.local ? '--local' : '--global';
  for (const section of ['filter.coral', 'diff.coral', 'merge.coral'])
    await gitRaw(cwd, ['config', scope, '--remove-section', section]);
  await gitRaw(cwd, ['config', scope, '--unset', 'coral.backend']);
  if (await insideRepo(cwd)) {
    const hook = path.join(await hooksDir(cwd), 'pre-push');
    if (fs.existsSync(hook) && (await fsp.readFile(hook, 'utf8')).includes(HOOK_MARK)) await fsp.rm(hook);
  }
}

// ---- .gitattributes -----------------------------------------------------------------------------

const TRACK_ATTRS = ['filter=coral', 'diff=coral', 'merge=coral', '-text'];

/** A pattern as a .gitattributes token: C-quoted when it holds whitespace, quotes or backslashes. */
export function quotePattern(p: string): string {
  if (!/[\s"\\]/.test(p) && !p.startsWith('#')) return p;
  if (p.startsWith('#') && !/[\s"\\]/.test(p)) return `\\${p}`;
  return `"${p.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\t/g, '\\t').replace(/\n/g, '\\n')}"`;
}

/** Splits one .gitattributes line into its pattern and attributes (null for blank lines and comments). */
export function parseAttributesLine(line: string): { pattern: string; attrs: string[] } | null {
  const t = line.replace(/^\s+/, '');
  if (t === '' || t.startsWith('#')) return null;
  let pattern: string;
  let rest: string;
  if (t.startsWith('"')) {
    let i = 1;
    let out = '';
    for (; i < t.length && t[i] !== '"'; i++) {
      if (t[i] === '\\' && i + 1 < t.length) {
        const c = t[++i];
        out += c === 't' ? '\t' : c === 'n' ? '\n' : c;
      } else out += t[i];
    }
    pattern = out;
    rest = t.slice(i + 1);
  } else {
    const m = /^(\S+)(.*)$/.exec(t)!;
    pattern = m[1].startsWith('\\#') ? m[1].slice(1) : m[1];
    rest = m[2];
  }
  return { pattern, attrs: rest.split(/\s+/).filter(Boolean) };
}

/**
 * A pattern given relative to `sub` (a subdirectory of the working tree, posix,
 * '' at the top), as it must be written in the top-level .gitattributes to
 * match the same files.
 */
export function rootPattern(pattern: string, sub: string): string {
  if (!pattern || pattern.startsWith('!'))
    throw invalidParameter('pattern', 'a gitattributes pattern (negative patterns are not allowed)', pattern);
  if (!sub) return pattern;
  const p = pattern.startsWith('/') ? pattern.slice(1) : pattern;
  // git: a pattern without a slash matches at any depth below the .gitattributes that holds it.
  const anyDepth = !pattern.replace(/\/$/, '').includes('/');
  return `/${sub}/${anyDepth ? `**/${p}` : p}`;
}

export interface TrackOptions {
  /** Add `coral-strategy=<s>` (the merge strategy for conflicting groups of these files). */
  strategy?: string;
}

async function attributesFile(cwd: string): Promise<{ file: string; sub: string }> {
  const dirs = await gitDirs(cwd);
  if (!dirs.worktree) throw new InvalidArgumentError('coral git track needs a working tree (the repository is bare)');
  const sub = path.relative(dirs.worktree, path.resolve(cwd)).split(path.sep).join('/');
  return { file: path.join(dirs.worktree, '.gitattributes'), sub: sub.startsWith('..') ? '' : sub };
}

async function readLines(file: string): Promise<string[]> {
  try {
    const s = await fsp.readFile(file, 'utf8');
    return s === '' ? [] : s.replace(/\n$/, '').split('\n');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
}

/** Patterns tracked by coral in the top-level .gitattributes, with their strategy when set. */
export async function trackedPatterns(cwd: string): Promise<Array<{ pattern: string; strategy?: string }>> {
  const { file } = await attributesFile(cwd);
  const out: Array<{ pattern: string; strategy?: string }> = [];
  for (const l of await readLines(file)) {
    const p = parseAttributesLine(l);
    if (!p || !p.attrs.includes('filter=coral')) continue;
    const s = p.attrs.find((a) => a.startsWith('coral-strategy='));
    out.push({ pattern: p.pattern, ...(s ? { strategy: s.slice('coral-strategy='.length) } : {}) });
  }
  return out;
}

/** Adds (or updates) the line tracking `pattern`; returns the pattern as written. */
export async function track(cwd: string, pattern: string, opts: TrackOptions = {}): Promise<string> {
  if (opts.strategy !== undefined && !isMergeStrategy(opts.strategy.split(':')[0]))
    throw invalidParameter('strategy', `one of ${MERGE_STRATEGIES.join(' ')}`, opts.strategy);
  const { file, sub } = await attributesFile(cwd);
  const written = rootPattern(pattern, sub);
  const attrs = [...TRACK_ATTRS, ...(opts.strategy ? [`coral-strategy=${opts.strategy}`] : [])];
  const line = `${quotePattern(written)} ${attrs.join(' ')}`;
  const lines = await readLines(file);
  const at = lines.findIndex((l) => {
    const p = parseAttributesLine(l);
    return p?.pattern === written && p.attrs.includes('filter=coral');
  });
  if (at >= 0) lines[at] = line;
  else lines.push(line);
  await fsp.writeFile(file, lines.join('\n') + '\n');
  return written;
}

/** Removes coral's line for `pattern`; false when there was none. */
export async function untrack(cwd: string, pattern: string): Promise<boolean> {
  const { file, sub } = await attributesFile(cwd);
  const written = rootPattern(pattern, sub);
  const lines = await readLines(file);
  const keep = lines.filter((l) => {
    const p = parseAttributesLine(l);
    return !(p && (p.pattern === written || p.pattern === pattern) && p.attrs.includes('filter=coral'));
  });
  if (keep.length === lines.length) return false;
  await fsp.writeFile(file, keep.length ? keep.join('\n') + '\n' : '');
  return true;
}
