/**
 * Running the real git binary: one helper that captures stdout as bytes,
 * passes stdin, and turns a failure into GitCommandError with git's own
 * message. The extension asks git for everything git owns (the repository's
 * directories, config, attributes, blobs, refs) instead of reading .git/ by
 * hand.
 */
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { GitCommandError } from '../errors';

export interface GitRun {
  stdout: Buffer;
  stderr: string;
  code: number;
}

/** Runs `git <args>` in `cwd`; resolves whatever the exit code (see `git` for the throwing form). */
export function gitRaw(cwd: string, args: readonly string[], input?: Uint8Array | string): Promise<GitRun> {
  return new Promise((resolve, reject) => {
    const child = spawn('git', args, { cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e) => reject(new GitCommandError(`cannot run git: ${e.message}`, { args: [...args] })));
    child.on('close', (code) =>
      resolve({ stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString('utf8'), code: code ?? 1 }),
    );
    child.stdin.on('error', () => undefined); // git may exit without reading its input
    child.stdin.end(input ?? '');
  });
}

/** Runs `git <args>` and returns its stdout; a non-zero exit is a GitCommandError carrying git's message. */
export async function git(cwd: string, args: readonly string[], input?: Uint8Array | string): Promise<Buffer> {
  const r = await gitRaw(cwd, args, input);
  if (r.code !== 0)
    throw new GitCommandError(`git ${args.join(' ')} failed: ${r.stderr.trim() || `exit code ${r.code}`}`, {
      args: [...args],
      exitCode: r.code,
    });
  return r.stdout;
}

/** `git <args>` stdout as one trimmed line. */
export async function gitLine(cwd: string, args: readonly string[]): Promise<string> {
  return (await git(cwd, args)).toString('utf8').trim();
}

/** Where a repository keeps things. */
export interface GitDirs {
  /** The top of the working tree ('' for a bare repository). */
  worktree: string;
  /** This worktree's git dir (`.git`, or `.git/worktrees/<name>` for a linked worktree). */
  gitDir: string;
  /** The directory shared by all worktrees (holds objects, refs and coral's payloads). */
  commonDir: string;
}

/** The directories of the repository containing `cwd` (GitCommandError outside one). */
export async function gitDirs(cwd: string): Promise<GitDirs> {
  const r = await gitRaw(cwd, [
    'rev-parse',
    '--is-bare-repository',
    '--absolute-git-dir',
    '--git-common-dir',
    '--show-toplevel',
  ]);
  const lines = r.stdout.toString('utf8').split('\n');
  if (r.code !== 0 && !(lines[0] === 'true' && lines.length >= 3))
    throw new GitCommandError(`not inside a git repository: ${cwd} (${r.stderr.trim()})`, { path: cwd });
  const bare = lines[0] === 'true';
  const gitDir = lines[1];
  const common = path.resolve(cwd, lines[2]);
  return { worktree: bare ? '' : (lines[3] ?? ''), gitDir, commonDir: common };
}

/** A git config value, or undefined when unset. */
export async function gitConfig(cwd: string, key: string, type?: 'bool' | 'int'): Promise<string | undefined> {
  const r = await gitRaw(cwd, ['config', ...(type ? [`--type=${type}`] : []), '--get', key]);
  if (r.code === 1) return undefined;
  if (r.code !== 0) throw new GitCommandError(`git config --get ${key} failed: ${r.stderr.trim()}`, { key });
  return r.stdout.toString('utf8').replace(/\n$/, '');
}
