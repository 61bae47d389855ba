/**
 * The path transport: a RemoteRepo over a repository directory on this machine (a path or a `file://` URL).
 * The directory is either a bare repository (`coral init --bare`: the layout of transport.ts, marked by
 * `coral-repo.json`) or an ordinary repository, whose `.coral/` has the same layout.
 *
 * Everything goes through the local code that ordinary repositories use, so a push into a repository that
 * other coral processes are using at the same time is as safe as their own writes:
 * - objects: LocalPackStore (one transaction = one immutable pack: temp file, fsync, rename, index);
 * - meta objects: MetaStore (temp file, fsync, rename; verified against the sha256 on read);
 * - refs: RefStore (compare-and-swap under the ref's lock file, with a reflog line);
 * - a writer session (lib/odb/session.ts) is held while the remote is open, so gc in that repository waits
 *   and never removes an object this push relies on.
 *
 * A push to the branch checked out in a non-bare repository is refused (RemoteRejectedError), as git's
 * `receive.denyCurrentBranch` does: its worktree and index would silently disagree with the moved branch.
 *
 * @example
 * await initBare('/srv/models/llama.coral');
 * const remote = await openFileRemote('/srv/models/llama.coral');
 * const refs = await remote.listRefs();
 * await remote.close();
 */
import * as fs from 'node:fs';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { AlreadyExistsError, InvalidArgumentError, RemoteNotFoundError, RemoteRejectedError } from '../errors';
import { CORAL_DIR, RepoLayout } from '../layout';
import { checkRefName, checkShortRefName } from '../models';
import { MetaStore } from '../odb/meta-store';
import { WriterSession } from '../odb/session';
import { RefStore } from '../refs/refs';
import { LocalPackStore } from '../store/local';
import type { ObjectStore } from '../store/object-store';
import { writeFileAtomic } from '../util/fsutil';
import type { OpenRemoteOptions, RemoteMeta, RemoteRefValue, RemoteRepo } from './transport';

/** The marker file of a bare repository and its content. */
export const BARE_MARKER = 'coral-repo.json';
export const BARE_FORMAT = 'coral-bare-1';

/** The directories every repository directory has (bare, or a `.coral/`). */
const REPO_DIRS = ['refs/heads', 'refs/tags', 'objects/packs', 'objects/meta', 'tmp', 'sessions', 'logs'];

/** Where a path remote keeps its repository: the directory holding HEAD, and whether it is bare. */
interface Located {
  /** The repository directory (bare dir, or `<worktree>/.coral`). */
  coral: string;
  /** The worktree of a non-bare repository; null for a bare one. */
  worktree: string | null;
}

/** A `file://` URL or a path, as an absolute path. */
export function filePathOf(url: string): string {
  if (/^file:/i.test(url)) {
    try {
      return fileURLToPath(url);
    } catch (e) {
      throw new InvalidArgumentError(`invalid file URL ${JSON.stringify(url)}: ${(e as Error).message}`, { url });
    }
  }
  return path.resolve(url);
}

function locate(dir: string): Located | null {
  if (fs.existsSync(path.join(dir, BARE_MARKER)) && fs.existsSync(path.join(dir, 'HEAD')))
    return { coral: dir, worktree: null };
  if (fs.existsSync(path.join(dir, CORAL_DIR, 'HEAD'))) return { coral: path.join(dir, CORAL_DIR), worktree: dir };
  // The `.coral` directory of an ordinary repository named directly.
  if (path.basename(dir) === CORAL_DIR && fs.existsSync(path.join(dir, 'HEAD')))
    return { coral: dir, worktree: path.dirname(dir) };
  return null;
}

/**
 * Creates an empty bare repository in `dir` (created if missing; an existing directory must be empty),
 * with an unborn `branch` (default main). Built beside the target and renamed into place when the
 * directory is new, so a crash never leaves half a repository. Returns the absolute path.
 */
export async function initBare(dir: string, opts: { branch?: string } = {}): Promise<string> {
  const target = path.resolve(dir);
  const branch = checkShortRefName(opts.branch ?? 'main');
  let existing: string[] | null = null;
  try {
    existing = await fsp.readdir(target);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  if (existing && existing.length > 0)
    throw new AlreadyExistsError(`${target} exists and is not empty`, { path: target });
  const staging = `${target}.init-${process.pid}`;
  await fsp.rm(staging, { recursive: true, force: true });
  for (const d of REPO_DIRS) await fsp.mkdir(path.join(staging, d), { recursive: true });
  await writeFileAtomic(path.join(staging, 'HEAD'), `ref: refs/heads/${branch}\n`);
  await writeFileAtomic(path.join(staging, 'config'), JSON.stringify({ core: { bare: true } }, null, 2) + '\n');
  // The marker last: a directory without it is not (yet) a repository.
  await writeFileAtomic(path.join(staging, BARE_MARKER), JSON.stringify({ format: BARE_FORMAT }) + '\n');
  if (existing) {
    for (const name of await fsp.readdir(staging)) await fsp.rename(path.join(staging, name), path.join(target, name));
    await fsp.rmdir(staging);
  } else {
    await fsp.mkdir(path.dirname(target), { recursive: true });
    await fsp.rename(staging, target);
  }
  return target;
}

/** Is `dir` a bare repository (has the marker)? */
export function isBareRepository(dir: string): boolean {
  return fs.existsSync(path.join(dir, BARE_MARKER));
}

class FileMeta implements RemoteMeta {
  constructor(private readonly store: MetaStore) {}
  has(id: string): Promise<boolean> {
    return this.store.has(id);
  }
  get(id: string): Promise<Uint8Array> {
    return this.store.get(id);
  }
  put(bytes: Uint8Array): Promise<string> {
    return this.store.put(bytes);
  }
}

class FileRemote implements RemoteRepo {
  readonly transport = 'file';
  readonly meta: RemoteMeta;
  private readonly refs: RefStore;
  private closed = false;

  constructor(
    readonly url: string,
    private readonly where: Located,
    readonly objects: ObjectStore,
    /** Keeps gc in that repository waiting while this handle is open (null on a read-only mount). */
    private readonly session: WriterSession | null,
  ) {
    const layout = new RepoLayout(where.worktree ?? where.coral, where.coral);
    this.meta = new FileMeta(new MetaStore(layout.meta, layout.tmp));
    this.refs = new RefStore(where.coral);
  }

  async listRefs(): Promise<Map<string, RemoteRefValue>> {
    const out = new Map<string, RemoteRefValue>();
    for (const r of await this.refs.listRefs('refs/')) out.set(r.name, { id: r.id, token: r.id });
    return out;
  }

  async headBranch(): Promise<string | null> {
    try {
      const h = await this.refs.readHead();
      return h.kind === 'symbolic' && h.target.startsWith('refs/heads/') ? h.target.slice('refs/heads/'.length) : null;
    } catch {
      return null;
    }
  }

  async updateRef(name: string, expected: string | null, next: string | null): Promise<void> {
    checkRefName(name);
    if (!name.startsWith('refs/'))
      throw new InvalidArgumentError(`a remote ref must be under refs/, not ${JSON.stringify(name)}`);
    if (this.where.worktree !== null && (await this.refs.currentBranch()) === name)
      throw new RemoteRejectedError(
        `refusing to update the checked-out branch ${name} of the non-bare repository ${this.where.worktree}: ` +
          'its worktree would no longer match; push to a bare repository (`coral init --bare`) or another branch',
        { ref: name, remote: this.url },
      );
    if (next === null) {
      if (expected === null) {
        if ((await this.refs.readRef(name)) === null) return;
        // Deleting "a ref that must not exist" that does exist: the CAS fails.
        await this.refs.deleteRef(name, '0'.repeat(64));
        return;
      }
      await this.refs.deleteRef(name, expected);
      return;
    }
    await this.refs.updateRef(name, next, { expectedOld: expected, message: 'push' });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await this.objects.close();
    } finally {
      this.session?.end();
    }
  }
}

/**
 * Opens the repository at a path or `file://` URL. RemoteNotFoundError when there is none, unless
 * `opts.create`, which makes an empty bare repository there (the directory must be missing or empty).
 */
export async function openFileRemote(url: string, opts: OpenRemoteOptions = {}): Promise<RemoteRepo> {
  const dir = filePathOf(url);
  let where = locate(dir);
  if (!where && opts.create) {
    let entries: string[] = [];
    try {
      entries = await fsp.readdir(dir);
    } catch {
      /* missing: created below */
    }
    if (entries.length > 0)
      throw new RemoteNotFoundError(`${dir} is not a coral repository (and not empty, so none is created there)`, {
        url,
      });
    await initBare(dir);
    where = locate(dir);
  }
  if (!where) throw new RemoteNotFoundError(`${dir} does not appear to be a coral repository`, { url, path: dir });
  const layout = new RepoLayout(where.worktree ?? where.coral, where.coral);
  let session: WriterSession | null = null;
  try {
    session = await WriterSession.begin(layout, 'remote');
  } catch (e) {
    // A repository on a read-only mount can still be fetched from (nothing there can run gc either).
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EACCES' && code !== 'EROFS' && code !== 'EPERM') throw e;
  }
  try {
    const objects = await LocalPackStore.open(where.coral);
    return new FileRemote(/^file:/i.test(url) ? url : dir, where, objects, session);
  } catch (e) {
    session?.end();
    throw e;
  }
}
